package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * Supplies the signed-in account's bearer token for uploads to services whose signed config
 * declares {@code "auth": "bearer"}. Set it with {@link SyncAgent#setCredentialProvider}. The
 * library never stores a token: it asks at the first request of a run that needs one, keeps the
 * answer in memory until that run ends (wiping its own copy), and sends it only to the region
 * approved for the account.
 *
 * <p><b>Threading:</b> called synchronously on the thread that called {@link
 * SyncAgent#runOnce}, at most once per run and service plus once per refresh, while no lock of
 * the native agent is held. It may block (e.g. to refresh the token through the account service)
 * but the run waits meanwhile: {@link SyncAgent#cancel()} cannot cut it short (the run sees the
 * cancel only once it returns, then ends and {@code runOnce} returns), and {@code runOnce}'s time
 * budget is checked again only afterwards. Give a blocking lookup its own timeout. It may call back into the same agent without deadlock:
 * {@link SyncAgent#stats()}, {@link SyncAgent#enqueue}, {@link SyncAgent#cancel()}, {@link
 * SyncAgent#setAccount} and the other methods work as from any thread; a nested {@link
 * SyncAgent#runOnce} throws {@link BusyException} (this run holds the queue), and {@link
 * SyncAgent#close()} throws {@link IllegalStateException} (it would wait for the very call it
 * runs in).
 *
 * <p><b>Errors:</b> if it throws, the run ends cleanly with an {@link AuthException} of kind
 * {@code unauthorized} whose message includes the thrown exception's message (its class name if
 * it has none), so never put the token in that message. The thrown exception itself is cleared
 * and not attached. Items are left as they were: no attempt is counted and nothing is sent
 * without a token.
 *
 * <p><b>Secrecy:</b> tokens are Java {@link String}s, which are immutable and cannot be wiped:
 * the returned string (and the copies the JVM makes) stays in the Java heap until it is garbage
 * collected. Do not keep more copies than needed, and never log it. The native copy is wiped
 * when the run ends. Keep this interface's method in R8 (the library's {@code
 * consumer-rules.pro} does).
 */
@FunctionalInterface
public interface CredentialProvider {
    /**
     * Returns the bearer token (RFC 6750 {@code b64token} characters only, at most 8 KiB) for
     * uploads of {@code accountId} to {@code service} in {@code region}.
     *
     * @param accountId the account passed to {@link SyncAgent#setAccount}
     * @param region the approved region id the request goes to, e.g. {@code "in"}
     * @param service the config's service name, e.g. {@code "backup"}
     * @param refresh {@code true} when the server refused the token given before (401/403):
     *     return a new one, not a cached copy. A second refusal after a refresh ends the run with
     *     {@link AuthException} kind {@code unauthorized}.
     * @return the token, or {@code null} when the account is not signed in (the run ends with
     *     {@link AuthException} kind {@code unauthorized}; nothing is sent)
     * @throws Exception any failure; it ends the run as described above
     */
    @Nullable
    String getToken(
            @NotNull String accountId, @NotNull String region, @NotNull String service, boolean refresh)
            throws Exception;
}

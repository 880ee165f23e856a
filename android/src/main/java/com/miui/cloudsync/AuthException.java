package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;

/**
 * Uploads need an account's credentials and did not get usable ones. The run stopped without
 * counting an attempt against any item; nothing is lost.
 *
 * <p>Kinds ({@link #getKind()}):
 *
 * <ul>
 *   <li>{@code unauthorized} (53): the backup service answered 401 or 403 again after one refresh
 *       of the token, or the {@link CredentialProvider} returned {@code null}, an unusable token,
 *       or threw (its message is in this exception's message); or no provider is set. Refresh
 *       the account's credentials and run again.
 *   <li>{@code no_account} (22): no account is signed in ({@link SyncAgent#setAccount} with a
 *       {@code null} account): runs and enqueues are refused, the queue is kept. Sign an
 *       account in to resume.
 * </ul>
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public class AuthException extends SyncException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates an exception. Native code uses this constructor (keep it in {@code
     * consumer-rules.pro}); apps may use it in tests.
     *
     * @param kind the stable kind name
     * @param code the stable numeric code of the kind
     * @param message a human-readable description without personal data
     */
    public AuthException(@NotNull String kind, int code, @NotNull String message) {
        super(kind, code, message);
    }
}

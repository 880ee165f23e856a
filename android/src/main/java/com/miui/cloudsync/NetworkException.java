package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;

/**
 * A problem talking to a server: connecting, TLS, a protocol violation, or a permanent refusal.
 * Upload failures of single items are recorded in the queue (and retried) rather than thrown.
 *
 * <p>Kinds ({@link #getKind()}): {@code network}, {@code protocol}, {@code rejected}.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public class NetworkException extends SyncException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates an exception. Native code uses this constructor (keep it in {@code
     * consumer-rules.pro}); apps may use it in tests.
     *
     * @param kind the stable kind name
     * @param code the stable numeric code of the kind
     * @param message a human-readable description without personal data
     */
    public NetworkException(@NotNull String kind, int code, @NotNull String message) {
        super(kind, code, message);
    }
}

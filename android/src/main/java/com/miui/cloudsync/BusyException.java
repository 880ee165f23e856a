package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;

/**
 * The upload queue is in use: another runner holds its lease (another {@code SyncAgent} or
 * process on the same database file is inside {@code runOnce}), or the database stayed locked.
 * Retry later.
 *
 * <p>Kinds ({@link #getKind()}): {@code busy}.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public class BusyException extends SyncException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates an exception. Native code uses this constructor (keep it in {@code
     * consumer-rules.pro}); apps may use it in tests.
     *
     * @param kind the stable kind name
     * @param code the stable numeric code of the kind
     * @param message a human-readable description without personal data
     */
    public BusyException(@NotNull String kind, int code, @NotNull String message) {
        super(kind, code, message);
    }
}

package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;

/**
 * The upload queue is in use: another runner holds it (another {@code SyncAgent} or process on
 * the same database file is inside {@code runOnce}; the message says which, e.g. "another runner
 * holds the queue (a live process; its lease ends in 42 s)"), this run was superseded after it
 * was frozen past its lease, or the database stayed locked. Retry later. A runner whose process
 * was killed holds nothing: the next run takes its items over at once.
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

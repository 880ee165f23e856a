package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * Counters of the upload queue, from {@link SyncAgent#stats()}.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public final class QueueStats {
    private final long pending;
    private final long uploading;
    private final long failed;
    private final long dead;
    private final long held;
    private final long done;
    private final long pendingBytes;
    private final long nextDueAt;

    /** Built by native code (signature {@code (JJJJJJJJ)V}; kept in {@code consumer-rules.pro}). */
    QueueStats(
            long pending,
            long uploading,
            long failed,
            long dead,
            long held,
            long done,
            long pendingBytes,
            long nextDueAt) {
        this.pending = pending;
        this.uploading = uploading;
        this.failed = failed;
        this.dead = dead;
        this.held = held;
        this.done = done;
        this.pendingBytes = pendingBytes;
        this.nextDueAt = nextDueAt;
    }

    /** @return items waiting for a run */
    public long getPending() {
        return pending;
    }

    /** @return items claimed by the run in progress */
    public long getUploading() {
        return uploading;
    }

    /** @return items that failed and wait for a retry (with backoff) */
    public long getFailed() {
        return failed;
    }

    /** @return items given up on (too many attempts or a permanent error) */
    public long getDead() {
        return dead;
    }

    /**
     * @return items stamped for a region other than the approved one, waiting for {@link
     *     SyncAgent#rehome()} or {@link SyncAgent#discardHeld()}
     */
    public long getHeld() {
        return held;
    }

    /** @return items confirmed by the server (rows of the audit trail) */
    public long getDone() {
        return done;
    }

    /** @return bytes of queued items not yet confirmed */
    public long getPendingBytes() {
        return pendingBytes;
    }

    /**
     * When the next pending or failed item is due, in milliseconds since the epoch (a time in the
     * past: due now), as {@link RunReport#getNextDueAt()}.
     *
     * @return milliseconds since the epoch, or {@code -1} when no pending or failed item waits
     */
    public long getNextDueAt() {
        return nextDueAt;
    }

    /** @return the total of all states except done */
    public long getQueued() {
        return pending + uploading + failed + dead + held;
    }

    /** {@inheritDoc} */
    @Override
    public boolean equals(@Nullable Object o) {
        if (!(o instanceof QueueStats)) {
            return false;
        }
        QueueStats s = (QueueStats) o;
        return pending == s.pending
                && uploading == s.uploading
                && failed == s.failed
                && dead == s.dead
                && held == s.held
                && done == s.done
                && pendingBytes == s.pendingBytes
                && nextDueAt == s.nextDueAt;
    }

    /** {@inheritDoc} */
    @Override
    public int hashCode() {
        return java.util.Arrays.hashCode(
                new long[] {pending, uploading, failed, dead, held, done, pendingBytes, nextDueAt});
    }

    /** {@inheritDoc} */
    @Override
    @NotNull
    public String toString() {
        return "QueueStats{pending=" + pending + ", uploading=" + uploading + ", failed=" + failed
                + ", dead=" + dead + ", held=" + held + ", done=" + done
                + ", pendingBytes=" + pendingBytes + ", nextDueAt=" + nextDueAt + "}";
    }
}

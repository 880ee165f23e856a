package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * What one {@link SyncAgent#runOnce(long, RunListener)} did, and when the next run is worth
 * scheduling ({@link #getNextDueAt()}).
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public final class RunReport {
    /** Why a run ended. */
    public enum StopReason {
        /** No due item of the approved region is left. */
        DRAINED,
        /** The time limit elapsed. */
        TIME_UP,
        /** {@link SyncAgent#cancel()} was called, or the listener threw. */
        CANCELLED,
        /**
         * The approved region changed (a new config or account country) or the config expired
         * during the run; the remaining items wait for the next run under the new region.
         */
        REGION_CHANGED,
        /**
         * Another account was signed in, or the account signed out ({@link
         * SyncAgent#setAccount}), during the run; its items wait for that account.
         */
        ACCOUNT_CHANGED,
        /**
         * A reason this version of the Java API does not know (a newer native library); treat it
         * like {@link #TIME_UP}: schedule the next run as usual.
         */
        UNKNOWN;

        /** The constant of a native name; {@link #UNKNOWN} for any other name (never throws). */
        @NotNull
        static StopReason fromNative(@Nullable String name) {
            return NativeNames.toEnum(StopReason.class, name, UNKNOWN);
        }
    }

    private final String region;
    private final long uploaded;
    private final long bytes;
    private final long failed;
    private final long dead;
    private final long held;
    private final long remaining;
    private final StopReason stopped;
    private final long nextDueAt;

    /**
     * Built by native code (signature {@code (Ljava/lang/String;JJJJJJLjava/lang/String;J)V};
     * kept in {@code consumer-rules.pro}).
     */
    RunReport(
            @NotNull String region,
            long uploaded,
            long bytes,
            long failed,
            long dead,
            long held,
            long remaining,
            @Nullable String stopped,
            long nextDueAt) {
        this.region = region;
        this.uploaded = uploaded;
        this.bytes = bytes;
        this.failed = failed;
        this.dead = dead;
        this.held = held;
        this.remaining = remaining;
        this.stopped = StopReason.fromNative(stopped);
        this.nextDueAt = nextDueAt;
    }

    /** @return the id of the region the run uploaded to */
    @NotNull
    public String getRegion() {
        return region;
    }

    /** @return items confirmed by the server in this run */
    public long getUploaded() {
        return uploaded;
    }

    /** @return bytes of the items confirmed in this run */
    public long getBytes() {
        return bytes;
    }

    /** @return upload attempts that failed in this run (those items are retried later) */
    public long getFailed() {
        return failed;
    }

    /** @return items that were given up on in this run */
    public long getDead() {
        return dead;
    }

    /** @return items held because they are stamped for another region */
    public long getHeld() {
        return held;
    }

    /**
     * @return items still queued for the approved region (pending, failed or uploading), whether
     *     due now or waiting out a backoff; see {@link #getNextDueAt()} for when to run again
     */
    public long getRemaining() {
        return remaining;
    }

    /** @return why the run ended */
    @NotNull
    public StopReason getStopped() {
        return stopped;
    }

    /**
     * When the next queued item is due, as the run ended: the earliest next attempt of a pending
     * or failed item, in milliseconds since the epoch. A time in the past (or now) means an item
     * is due at once (e.g. the run stopped on {@link StopReason#TIME_UP}); a time in the future
     * means every remaining item waits out a backoff until then. Schedule the next run for this
     * time, e.g. a WorkManager {@code OneTimeWorkRequest} with {@code setInitialDelay(max(0,
     * nextDueAt - System.currentTimeMillis()), MILLISECONDS)}. Held and dead items are not
     * counted: they wait for the app ({@link SyncAgent#rehome()}, {@link SyncAgent#retryDead()}),
     * not for time.
     *
     * @return milliseconds since the epoch, or {@code -1} when no item waits (nothing to schedule
     *     until the next {@link SyncAgent#enqueue})
     */
    public long getNextDueAt() {
        return nextDueAt;
    }

    /** {@inheritDoc} */
    @Override
    @NotNull
    public String toString() {
        return "RunReport{region=" + region + ", uploaded=" + uploaded + ", bytes=" + bytes
                + ", failed=" + failed + ", dead=" + dead + ", held=" + held
                + ", remaining=" + remaining + ", stopped=" + stopped
                + ", nextDueAt=" + nextDueAt + "}";
    }
}

package com.miui.cloudsync;

/**
 * What one {@link SyncAgent#runOnce(long, ProgressListener)} did.
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
        /** {@link SyncAgent#cancel()} was called, or the progress listener threw. */
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
        ACCOUNT_CHANGED;

        static StopReason fromNative(String name) {
            switch (name) {
                case "drained":
                    return DRAINED;
                case "time_up":
                    return TIME_UP;
                case "cancelled":
                    return CANCELLED;
                case "region_changed":
                    return REGION_CHANGED;
                case "account_changed":
                    return ACCOUNT_CHANGED;
                default:
                    throw new IllegalArgumentException("unknown stop reason " + name);
            }
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

    /**
     * Built by native code (signature {@code (Ljava/lang/String;JJJJJJLjava/lang/String;)V};
     * kept in {@code consumer-rules.pro}).
     */
    RunReport(
            String region,
            long uploaded,
            long bytes,
            long failed,
            long dead,
            long held,
            long remaining,
            String stopped) {
        this.region = region;
        this.uploaded = uploaded;
        this.bytes = bytes;
        this.failed = failed;
        this.dead = dead;
        this.held = held;
        this.remaining = remaining;
        this.stopped = StopReason.fromNative(stopped);
    }

    /** @return the id of the region the run uploaded to */
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

    /** @return items still queued for the approved region */
    public long getRemaining() {
        return remaining;
    }

    /** @return why the run ended */
    public StopReason getStopped() {
        return stopped;
    }

    /** {@inheritDoc} */
    @Override
    public String toString() {
        return "RunReport{region=" + region + ", uploaded=" + uploaded + ", bytes=" + bytes
                + ", failed=" + failed + ", dead=" + dead + ", held=" + held
                + ", remaining=" + remaining + ", stopped=" + stopped + "}";
    }
}

package com.miui.cloudsync;

/**
 * Receives upload progress from {@link SyncAgent#runOnce(long, ProgressListener)}. For the other
 * events of a run (an item started, done, failed with its kind, held) use {@link RunListener}.
 *
 * <p><b>Threading:</b> called synchronously on the thread that called {@code runOnce}, at most
 * about once per MiB sent and once when an item completes. Keep it fast: the upload waits while
 * it runs. It may call {@link SyncAgent#stats()}, {@link SyncAgent#cancel()} and the other
 * query methods of the same agent, but must not call {@link SyncAgent#close()} (that would wait
 * for the very call it runs in; it throws {@link IllegalStateException} instead).
 *
 * <p>If it throws, the run is cancelled cleanly (the current item goes back to the queue) and
 * {@code runOnce} rethrows the same exception once the run has wound down.
 *
 * <p><b>Blocking:</b> the run waits while it runs, and {@link SyncAgent#cancel()} cannot cut it
 * short: the run sees the cancel only once it returns, then winds down, and {@code
 * runOnce} returns (the time budget, too, is checked only between calls). A listener that blocks
 * for a minute delays {@code runOnce}, and a {@link SyncAgent#close()} on another thread, by a
 * minute. Do slow work elsewhere (post it to an executor).
 */
@FunctionalInterface
public interface ProgressListener {
    /**
     * Reports progress of one item: within a run, {@code sent} only grows for an item and {@code
     * sent == total} is reported at most once (an item's completion is never reported twice).
     *
     * @param itemId the id {@link SyncAgent#enqueue} returned for the item
     * @param sent bytes the server holds or is receiving (never more than {@code total})
     * @param total the item's size in bytes
     */
    void onProgress(long itemId, long sent, long total);
}

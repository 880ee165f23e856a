package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;

/**
 * Receives what a run does, item by item, from {@link SyncAgent#runOnce(long, RunListener)}: an
 * item started, its progress, and how its attempt ended (done, failed, or held). Override only the
 * methods you need; every method does nothing by default.
 *
 * <p>For each item the run picks: {@link #onItemStarted}, then {@link #onProgress} calls (sent
 * grows; the completed size is reported once), then exactly one of {@link #onItemDone}, {@link
 * #onItemFailed} or {@link #onItemHeld} — unless the run stops mid-item (cancelled, out of time,
 * or an exception such as {@link AuthException}), in which case the item goes back to the queue
 * with no ending event and no attempt counted (see {@link RunReport#getStopped()}). An item is
 * attempted at most once per run.
 *
 * <p>It extends {@link ProgressListener}, so {@code runOnce(maxMillis, null)} still compiles (it
 * picks this overload; {@code null} means no listener either way) and a lambda still means a
 * {@link ProgressListener}.
 *
 * <p><b>Threading:</b> as {@link ProgressListener}: called synchronously on the thread that called
 * {@code runOnce}, with no lock of the native agent held. Keep it fast: the upload waits while it
 * runs. It may call the same agent ({@link SyncAgent#stats()}, {@link SyncAgent#getItem}, {@link
 * SyncAgent#cancel()}, ...), but not {@link SyncAgent#close()} (that throws {@link
 * IllegalStateException}); a nested {@code runOnce} throws {@link BusyException}.
 *
 * <p>If a method throws, the run is cancelled cleanly (an item in flight goes back to the queue)
 * and {@code runOnce} rethrows the same exception once the run has wound down; no further method
 * is called. Keep the methods in R8 (the library's {@code consumer-rules.pro} does).
 *
 * <p><b>Blocking:</b> the run waits while a method runs, and {@link SyncAgent#cancel()} cannot cut
 * it short: the run sees the cancel only once the method returns, then winds down, and {@code
 * runOnce} returns (the time budget, too, is checked only between calls). A method that blocks for
 * a minute delays {@code runOnce}, and a {@link SyncAgent#close()} on another thread, by a
 * minute. Do slow work elsewhere (post it to an executor).
 */
public interface RunListener extends ProgressListener {
    /**
     * An item was claimed and its upload attempt begins.
     *
     * @param itemId the id {@link SyncAgent#enqueue} returned
     * @param size the item's size in bytes
     */
    default void onItemStarted(long itemId, long size) {}

    /**
     * {@inheritDoc}
     *
     * <p>Called at most about once per MiB sent; {@code sent == total} at most once per item (for
     * an item that completes, before {@link #onItemDone}).
     */
    @Override
    default void onProgress(long itemId, long sent, long total) {}

    /**
     * The server confirmed the whole item; it left the queue (its record is in {@link
     * SyncAgent#audit(long, int)}).
     *
     * @param itemId the item's id
     * @param bytes its size in bytes
     */
    default void onItemDone(long itemId, long bytes) {}

    /**
     * The attempt failed. The item waits for a retry ({@code dead == false}), or was given up on
     * ({@code dead == true}: a permanent error such as {@code rejected}, or too many attempts;
     * {@link SyncAgent#retryDead()} revives it). {@link SyncAgent#getItem(long)} has the message.
     *
     * @param itemId the item's id
     * @param kind why, as a {@link SyncException} {@code KIND_*} name (e.g. {@code "network"})
     * @param dead whether it was given up on
     * @param nextAttemptAtMillis when it is due again, in milliseconds since the epoch; {@code
     *     -1} when it is dead
     */
    default void onItemFailed(long itemId, @NotNull String kind, boolean dead, long nextAttemptAtMillis) {}

    /**
     * The item in flight is held: the approved region or the signed-in account changed during its
     * upload (the run then stops, see {@link RunReport#getStopped()}). It keeps what the server
     * confirmed, for when its region or account comes back.
     *
     * @param itemId the item's id
     */
    default void onItemHeld(long itemId) {}
}

package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * The state of a queued item ({@link ItemInfo#getItemState()}). The constants are the native
 * state names in upper case ({@code "pending"} is {@link #PENDING}); a state added by a newer
 * native library reads as {@link #UNKNOWN}. {@link SyncAgent#listItemsIn} lists the items of one
 * state.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public enum ItemState {
    /** Waiting for a run (due at {@link ItemInfo#getNextAttemptAt()}). */
    PENDING,
    /** Claimed by the run in progress. */
    UPLOADING,
    /** The last attempt failed; retried from {@link ItemInfo#getNextAttemptAt()} with backoff. */
    FAILED,
    /** Given up on (a permanent error, or too many attempts); {@link SyncAgent#retryDead()} revives it. */
    DEAD,
    /**
     * Waiting for its region or account to come back ({@link ItemInfo#getItemHeldReason()}), or
     * for {@link SyncAgent#rehome()} / {@link SyncAgent#discardHeld()}.
     */
    HELD,
    /**
     * Confirmed by the server. Such items leave the queue at once, so {@link SyncAgent#getItem}
     * and {@link SyncAgent#listItemsIn} never return it today; it completes the native table.
     */
    DONE,
    /**
     * A state this version of the Java API does not know (a newer native library); treat it like
     * {@link #PENDING}: queued, nothing to do.
     */
    UNKNOWN;

    /** The constant of a native state name; {@link #UNKNOWN} for any other (never throws). */
    @NotNull
    static ItemState fromNative(@Nullable String name) {
        return NativeNames.toEnum(ItemState.class, name, UNKNOWN);
    }
}

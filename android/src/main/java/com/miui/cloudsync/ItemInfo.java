package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * One item of the upload queue as stored now, from {@link SyncAgent#getItem(long)} and {@link
 * SyncAgent#listItemsIn(ItemState, long, int)}: its file, service, state, attempts, how much the
 * server confirmed, its last error and when it is due again. An item leaves the queue when the
 * server confirms it (see {@link SyncAgent#audit(long, int)}) or when it is removed.
 *
 * <p>The state is {@link #getItemState()}, an {@link ItemState} ({@link ItemState#UNKNOWN} for a
 * state a newer library adds: treat it like {@link ItemState#PENDING}); a held item's reason is
 * {@link #getItemHeldReason()}. The string forms ({@link #getState()}, {@link #getHeldReason()} and
 * their {@code STATE_*} / {@code HELD_*} constants) are deprecated but unchanged.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public final class ItemInfo {
    /**
     * Waiting for a run (due at {@link #getNextAttemptAt()}).
     *
     * @deprecated use {@link ItemState#PENDING}
     */
    @Deprecated
    public static final String STATE_PENDING = "pending";
    /**
     * Claimed by the run in progress.
     *
     * @deprecated use {@link ItemState#UPLOADING}
     */
    @Deprecated
    public static final String STATE_UPLOADING = "uploading";
    /**
     * The last attempt failed; retried from {@link #getNextAttemptAt()} with backoff.
     *
     * @deprecated use {@link ItemState#FAILED}
     */
    @Deprecated
    public static final String STATE_FAILED = "failed";
    /**
     * Given up on (a permanent error, or too many attempts); {@link SyncAgent#retryDead()} revives
     * it.
     *
     * @deprecated use {@link ItemState#DEAD}
     */
    @Deprecated
    public static final String STATE_DEAD = "dead";
    /**
     * Waiting for its region or account to come back ({@link #getHeldReason()}), or for {@link
     * SyncAgent#rehome()} / {@link SyncAgent#discardHeld()}.
     *
     * @deprecated use {@link ItemState#HELD}
     */
    @Deprecated
    public static final String STATE_HELD = "held";

    /**
     * {@link #getHeldReason()}: stamped for a region other than the approved one.
     *
     * @deprecated use {@link HeldReason#REGION}
     */
    @Deprecated
    public static final String HELD_REGION = "region";
    /**
     * {@link #getHeldReason()}: belongs to an account other than the signed-in one.
     *
     * @deprecated use {@link HeldReason#ACCOUNT}
     */
    @Deprecated
    public static final String HELD_ACCOUNT = "account";

    private final long id;
    private final String path;
    private final String service;
    private final int priority;
    private final long size;
    private final String region;
    private final String state;
    private final ItemState itemState;
    private final int attempts;
    private final long confirmedOffset;
    private final long nextAttemptAt;
    private final String lastErrorKind;
    private final String lastErrorMessage;
    private final String heldReason;
    private final HeldReason itemHeldReason;
    private final String account;

    /**
     * Built by native code (signature {@code
     * (JLjava/lang/String;Ljava/lang/String;IJLjava/lang/String;Ljava/lang/String;IJJLjava/lang/String;Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;)V};
     * kept in {@code consumer-rules.pro}). {@code lastError} is the stored text, {@code "kind:
     * message"}.
     */
    ItemInfo(
            long id,
            @NotNull String path,
            @NotNull String service,
            int priority,
            long size,
            @Nullable String region,
            @NotNull String state,
            int attempts,
            long confirmedOffset,
            long nextAttemptAt,
            @Nullable String lastErrorKind,
            @Nullable String lastError,
            @Nullable String heldReason,
            @Nullable String account) {
        this.id = id;
        this.path = path;
        this.service = service;
        this.priority = priority;
        this.size = size;
        this.region = region;
        this.state = state;
        this.itemState = ItemState.fromNative(state);
        this.attempts = attempts;
        this.confirmedOffset = confirmedOffset;
        this.nextAttemptAt = nextAttemptAt;
        this.lastErrorKind = lastErrorKind;
        this.lastErrorMessage = message(lastErrorKind, lastError);
        this.heldReason = heldReason;
        this.itemHeldReason = heldReason == null ? null : HeldReason.fromNative(heldReason);
        this.account = account;
    }

    /** The message of {@code "kind: message"} (the whole text if it does not start so). */
    @Nullable
    private static String message(@Nullable String kind, @Nullable String error) {
        if (kind == null || error == null || !error.startsWith(kind + ":")) {
            return error;
        }
        return error.substring(kind.length() + 1).trim();
    }

    /** @return the id {@link SyncAgent#enqueue} returned */
    public long getId() {
        return id;
    }

    /** @return the absolute path of the file, as enqueued */
    @NotNull
    public String getPath() {
        return path;
    }

    /** @return the config's service name, e.g. {@code "backup"} */
    @NotNull
    public String getService() {
        return service;
    }

    /** @return the priority (higher runs first) */
    public int getPriority() {
        return priority;
    }

    /** @return the file's size in bytes, as enqueued */
    public long getSize() {
        return size;
    }

    /**
     * @return the id of the region the item is stamped for, or {@code null} until the first run
     *     with an approved region
     */
    @Nullable
    public String getRegion() {
        return region;
    }

    /**
     * The item's state as a string.
     *
     * @return the state's native name, one of the {@code STATE_*} constants
     * @deprecated use {@link #getItemState()} (the same state as an enum, with {@link
     *     ItemState#UNKNOWN} for a state a newer library adds)
     */
    @Deprecated
    @NotNull
    public String getState() {
        return state;
    }

    /**
     * @return the state; {@link ItemState#UNKNOWN} for one a newer native library adds (treat it
     *     like {@link ItemState#PENDING})
     */
    @NotNull
    public ItemState getItemState() {
        return itemState;
    }

    /** @return failed attempts so far (0 after {@link SyncAgent#retryDead()}) */
    public int getAttempts() {
        return attempts;
    }

    /** @return bytes the server has confirmed; an interrupted upload resumes from here */
    public long getConfirmedOffset() {
        return confirmedOffset;
    }

    /**
     * @return when the item is due for its next attempt, in milliseconds since the epoch (a time
     *     in the past: due now), for {@link ItemState#PENDING}, {@link ItemState#UPLOADING} and
     *     {@link ItemState#FAILED} items; {@code -1} for {@link ItemState#DEAD} and {@link
     *     ItemState#HELD} items, which no run attempts (as {@link RunListener#onItemFailed} says
     *     for a dead item; before issue 24 a stale time)
     */
    public long getNextAttemptAt() {
        return nextAttemptAt;
    }

    /**
     * @return the kind of the last failed attempt (a {@link SyncException} {@code KIND_*} name,
     *     e.g. {@code "network"} or {@code "rejected"}), or {@code null} if none failed
     */
    @Nullable
    public String getLastErrorKind() {
        return lastErrorKind;
    }

    /**
     * @return the message of the last failed attempt (no paths, URLs or account data), or {@code
     *     null} if none failed
     */
    @Nullable
    public String getLastErrorMessage() {
        return lastErrorMessage;
    }

    /**
     * Why a held item waits, as a string.
     *
     * @return {@link #HELD_REGION} or {@link #HELD_ACCOUNT} for a {@link ItemState#HELD} item;
     *     {@code null} for items in other states
     * @deprecated use {@link #getItemHeldReason()} (the same reason as an enum)
     */
    @Deprecated
    @Nullable
    public String getHeldReason() {
        return heldReason;
    }

    /**
     * @return why a {@link ItemState#HELD} item waits ({@link HeldReason#UNKNOWN} for a reason a
     *     newer native library adds); {@code null} for items in other states
     */
    @Nullable
    public HeldReason getItemHeldReason() {
        return itemHeldReason;
    }

    /**
     * @return the item's account stamp: the first 8 bytes of a keyed hash of the account id, in
     *     hex (the same for all items of one account on this device, and never the id itself); or
     *     {@code null} for an item enqueued before any account was signed in
     */
    @Nullable
    public String getAccount() {
        return account;
    }

    /** {@inheritDoc} */
    @Override
    @NotNull
    public String toString() {
        // No path: it may name the user's files, and toString() ends up in logs.
        return "ItemInfo{id=" + id + ", service=" + service + ", priority=" + priority
                + ", size=" + size + ", region=" + region + ", state=" + state
                + ", attempts=" + attempts + ", confirmedOffset=" + confirmedOffset
                + ", nextAttemptAt=" + nextAttemptAt + ", lastErrorKind=" + lastErrorKind
                + ", lastErrorMessage=" + lastErrorMessage + ", heldReason=" + heldReason
                + ", account=" + account + "}";
    }
}

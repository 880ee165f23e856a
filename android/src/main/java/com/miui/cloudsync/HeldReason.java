package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * Why a {@link ItemState#HELD} item waits ({@link ItemInfo#getItemHeldReason()}). The constants
 * are the native names in upper case; a reason added by a newer native library reads as {@link
 * #UNKNOWN}.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public enum HeldReason {
    /** Stamped for a region other than the approved one. */
    REGION,
    /** Belongs to an account other than the signed-in one. */
    ACCOUNT,
    /**
     * A reason this version of the Java API does not know (a newer native library); the item
     * waits like any held item ({@link SyncAgent#rehome()}, {@link SyncAgent#discardHeld()}).
     */
    UNKNOWN;

    /** The constant of a native name; {@link #UNKNOWN} for any other (never throws). */
    @NotNull
    static HeldReason fromNative(@Nullable String name) {
        return NativeNames.toEnum(HeldReason.class, name, UNKNOWN);
    }
}

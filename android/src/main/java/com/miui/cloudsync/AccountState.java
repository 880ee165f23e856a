package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * Whether an account is signed in, from {@link SyncAgent#getAccountState()} (as stored in the
 * database: every agent and process on the file sees the same). The constants are the native
 * names in upper case; a state added by a newer native library reads as {@link #UNKNOWN}.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public enum AccountState {
    /**
     * No account was ever set on this database ({@link SyncAgent#setAccount}): uploads need none
     * unless a service asks for credentials.
     */
    NEVER_SET,
    /**
     * The last account signed out ({@link SyncAgent#setAccount} with {@code null}): uploads and
     * enqueues stop ({@link AuthException} kind {@code no_account}) until one signs in.
     */
    SIGNED_OUT,
    /** An account is signed in. */
    SIGNED_IN,
    /** A state this version of the Java API does not know (a newer native library). */
    UNKNOWN;

    /** The constant of a native name; {@link #UNKNOWN} for any other (never throws). */
    @NotNull
    static AccountState fromNative(@Nullable String name) {
        return NativeNames.toEnum(AccountState.class, name, UNKNOWN);
    }
}

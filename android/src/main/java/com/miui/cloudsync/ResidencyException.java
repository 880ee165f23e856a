package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;

/**
 * Data residency stops the operation: no region is approved for the account (set the account
 * country and install a config that maps it), or a host outside the approved region was refused.
 *
 * <p>Kinds ({@link #getKind()}): {@code no_region}, {@code residency}.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public class ResidencyException extends SyncException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates an exception. Native code uses this constructor (keep it in {@code
     * consumer-rules.pro}); apps may use it in tests.
     *
     * @param kind the stable kind name
     * @param code the stable numeric code of the kind
     * @param message a human-readable description without personal data
     */
    public ResidencyException(@NotNull String kind, int code, @NotNull String message) {
        super(kind, code, message);
    }
}

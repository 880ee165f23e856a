package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;

/**
 * A problem with the signed config or root: a bad signature, a rollback, expiry, malformed
 * input, no config installed, or trust not yet anchored in the root passed to {@link
 * SyncAgent#open} ({@code root_mismatch}, see {@link ConfigInfo#isAnchored()}). The last good
 * config stays in force.
 *
 * <p>Kinds ({@link #getKind()}): {@code bad_signature}, {@code threshold_not_met}, {@code rollback}, {@code version_gap}, {@code expired}, {@code wrong_payload_type}, {@code malformed}, {@code invalid_endpoint}, {@code no_config}, {@code root_mismatch}.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public class ConfigException extends SyncException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates an exception. Native code uses this constructor (keep it in {@code
     * consumer-rules.pro}); apps may use it in tests.
     *
     * @param kind the stable kind name
     * @param code the stable numeric code of the kind
     * @param message a human-readable description without personal data
     */
    public ConfigException(@NotNull String kind, int code, @NotNull String message) {
        super(kind, code, message);
    }
}

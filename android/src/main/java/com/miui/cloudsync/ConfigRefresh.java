package com.miui.cloudsync;

import java.util.Arrays;
import org.jetbrains.annotations.NotNull;

/**
 * What one {@link SyncAgent#refreshConfig()} installed: the root versions it stepped through, the
 * config version, or nothing ({@link #isUnchanged()}).
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public final class ConfigRefresh {
    private final long[] rootVersions;
    private final long configVersion;
    private final String mirror;

    /**
     * Built by native code (signature {@code ([JJLjava/lang/String;)V}; kept in {@code
     * consumer-rules.pro}).
     */
    ConfigRefresh(@NotNull long[] rootVersions, long configVersion, @NotNull String mirror) {
        this.rootVersions = rootVersions.clone();
        this.configVersion = configVersion;
        this.mirror = mirror;
    }

    /**
     * @return the root versions installed, in order (e.g. {@code [3, 4]} for a phone that trusted
     *     root 2); empty when the root did not change
     */
    @NotNull
    public long[] getRootVersions() {
        return rootVersions.clone();
    }

    /** @return the config version installed, or {@code -1} when the config did not change */
    public long getConfigVersion() {
        return configVersion;
    }

    /** @return {@code host:port} of the mirror that answered */
    @NotNull
    public String getMirror() {
        return mirror;
    }

    /**
     * @return whether nothing was installed (the mirror had nothing newer; an unchanged config
     *     costs one conditional request answered 304)
     */
    public boolean isUnchanged() {
        return rootVersions.length == 0 && configVersion < 0;
    }

    /** {@inheritDoc} */
    @Override
    @NotNull
    public String toString() {
        return "ConfigRefresh{rootVersions=" + Arrays.toString(rootVersions) + ", configVersion="
                + configVersion + ", mirror=" + mirror + "}";
    }
}

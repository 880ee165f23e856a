package com.miui.cloudsync;

import java.util.Arrays;
import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * What one {@link SyncAgent#refreshConfig()} installed: the root versions it stepped through, the
 * config version, or nothing ({@link #isUnchanged()}); the root in force after it, and whether it
 * got everything the mirror had ({@link #getConfigError()}, {@link #hasMoreRoots()}).
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public final class ConfigRefresh {
    private final long[] rootVersions;
    private final long configVersion;
    private final String mirror;
    private final long rootVersion;
    private final String configError;
    private final boolean moreRoots;

    /**
     * Built by native code (signature {@code ([JJLjava/lang/String;JLjava/lang/String;Z)V}; kept
     * in {@code consumer-rules.pro}).
     */
    ConfigRefresh(
            @NotNull long[] rootVersions,
            long configVersion,
            @NotNull String mirror,
            long rootVersion,
            @Nullable String configError,
            boolean moreRoots) {
        this.rootVersions = rootVersions.clone();
        this.configVersion = configVersion;
        this.mirror = mirror;
        this.rootVersion = rootVersion;
        this.configError = configError;
        this.moreRoots = moreRoots;
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
     * The root version in force after the refresh, whether or not it changed (after a trust reset,
     * the newest root of the chain from the root passed to {@link SyncAgent#open}).
     *
     * @return the root version in force
     */
    public long getRootVersion() {
        return rootVersion;
    }

    /**
     * Why the config was not installed although roots were: verified roots are kept, the config
     * (signed under them) failed, e.g. {@code threshold_not_met} while more roots remain, or
     * {@code bad_signature}. The next refresh is then due at once ({@link
     * ConfigInfo#getRefreshDueAt()}). A refresh that installed no root and fails throws instead.
     *
     * @return the config's error kind name (as {@link SyncException#getKind()}), or {@code null}
     *     when the config was installed or unchanged
     */
    @Nullable
    public String getConfigError() {
        return configError;
    }

    /**
     * Whether the walk stopped at 64 roots with more to come: call {@link
     * SyncAgent#refreshConfig()} again (the next refresh is due at once).
     *
     * @return whether more roots remain on the mirror
     */
    public boolean hasMoreRoots() {
        return moreRoots;
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
                + configVersion + ", mirror=" + mirror + ", rootVersion=" + rootVersion
                + ", configError=" + configError + ", moreRoots=" + moreRoots + "}";
    }
}

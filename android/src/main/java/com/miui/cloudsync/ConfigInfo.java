package com.miui.cloudsync;

import java.text.SimpleDateFormat;
import java.util.Arrays;
import java.util.Collections;
import java.util.Date;
import java.util.List;
import java.util.Locale;
import java.util.TimeZone;
import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * What is installed, from {@link SyncAgent#configInfo()}: versions, expiry, region ids, the
 * account country, the approved region, when the next {@link SyncAgent#refreshConfig()} is due,
 * and how the stored trust stands against the root passed to {@link SyncAgent#open} ({@link
 * #isAnchored()}, {@link #getTrustReset()}). No keys and no URLs.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public final class ConfigInfo {
    private final long rootVersion;
    private final long configVersion;
    private final boolean expired;
    private final List<String> regions;
    private final String country;
    private final String approvedRegion;
    private final long expiresAtMillis;
    private final long refreshDueAtMillis;
    private final boolean anchored;
    private final String trustReset;

    /**
     * Built by native code (signature {@code
     * (JJZ[Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;ZLjava/lang/String;JJ)V};
     * kept in {@code consumer-rules.pro}). Times in milliseconds since the epoch ({@code -1}:
     * none); the deprecated text getters format them here, so the native library carries no
     * time formatting.
     */
    ConfigInfo(
            long rootVersion,
            long configVersion,
            boolean expired,
            @NotNull String[] regions,
            @Nullable String country,
            @Nullable String approvedRegion,
            boolean anchored,
            @Nullable String trustReset,
            long expiresAtMillis,
            long refreshDueAtMillis) {
        this.rootVersion = rootVersion;
        this.configVersion = configVersion;
        this.expired = expired;
        this.regions = Collections.unmodifiableList(Arrays.asList(regions.clone()));
        this.country = country;
        this.approvedRegion = approvedRegion;
        this.anchored = anchored;
        this.trustReset = trustReset;
        this.expiresAtMillis = expiresAtMillis;
        this.refreshDueAtMillis = refreshDueAtMillis;
    }

    /** @return the version of the root of trust in force */
    public long getRootVersion() {
        return rootVersion;
    }

    /** @return whether a verified config is installed */
    public boolean hasConfig() {
        return configVersion >= 0;
    }

    /** @return the installed config's version, or {@code -1} when none is installed */
    public long getConfigVersion() {
        return configVersion;
    }

    /**
     * The config's expiry as text.
     *
     * @return the config's expiry as RFC 3339 UTC text, or {@code null} when none is installed
     * @deprecated use {@link #getExpiresAtMillis()}: every time of the API is a {@code long} of
     *     milliseconds since the epoch
     */
    @Deprecated
    @Nullable
    public String getExpiresAt() {
        return rfc3339(expiresAtMillis);
    }

    /**
     * @return when the installed config expires, in milliseconds since the epoch, or {@code -1}
     *     when none is installed
     */
    public long getExpiresAtMillis() {
        return expiresAtMillis;
    }

    /** @return whether the config or root is expired (uploads are then off) */
    public boolean isExpired() {
        return expired;
    }

    /** @return the region ids the config defines (empty without a config), sorted */
    @NotNull
    public List<String> getRegions() {
        return regions;
    }

    /** @return the account country (upper-case ISO 3166-1 alpha-2), or {@code null} if unset */
    @Nullable
    public String getCountry() {
        return country;
    }

    /** @return the approved region id, or {@code null} when uploads are off */
    @Nullable
    public String getApprovedRegion() {
        return approvedRegion;
    }

    /**
     * When the next {@link SyncAgent#refreshConfig()} is due, if the root lists mirrors ({@code
     * sources}): at once when no valid config is installed or no mirror ever answered; otherwise
     * the earlier of a day after the last answer and the middle of the config's validity (so a
     * config is replaced well before it expires), but not sooner than an hour after the last
     * answer. {@link SyncAgent#runOnce} refreshes first by itself when it is due; schedule a job
     * for this time to refresh without uploads.
     *
     * @return RFC 3339 UTC text, or {@code null} when the root lists no sources
     * @deprecated use {@link #getRefreshDueAtMillis()}: the same time in milliseconds since the
     *     epoch
     */
    @Deprecated
    @Nullable
    public String getRefreshDueAt() {
        return rfc3339(refreshDueAtMillis);
    }

    /**
     * {@code millis} as the RFC 3339 UTC text the native library used to send (seconds precision,
     * {@code 2027-05-01T00:00:00Z}), or {@code null} for {@code -1}. A new formatter per call:
     * {@code SimpleDateFormat} is not thread-safe, and {@code java.time} needs API 26.
     */
    @Nullable
    private static String rfc3339(long millis) {
        if (millis < 0) {
            return null;
        }
        SimpleDateFormat f = new SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss'Z'", Locale.ROOT);
        f.setTimeZone(TimeZone.getTimeZone("UTC"));
        return f.format(new Date(millis));
    }

    /**
     * When the next {@link SyncAgent#refreshConfig()} is due: see {@link #getRefreshDueAt()} for
     * the rule.
     *
     * @return milliseconds since the epoch, or {@code -1} when the root lists no sources
     */
    public long getRefreshDueAtMillis() {
        return refreshDueAtMillis;
    }

    /**
     * Whether the trust in force is vouched for by the root passed to {@link SyncAgent#open} (the
     * anchor of every trust decision). {@code false} while the database's root is newer than that
     * root and its chain is not verified yet: nothing uploads ({@link SyncAgent#runOnce} and
     * {@link SyncAgent#installConfig} throw {@link ConfigException} kind {@code root_mismatch}),
     * no region is approved, and a config refresh is due at once; {@link
     * SyncAgent#refreshConfig()} (or the one {@code runOnce} makes first) re-walks the chain from
     * that root on its mirrors.
     *
     * @return whether uploads and trust changes are allowed by the root passed to {@code open}
     */
    public boolean isAnchored() {
        return anchored;
    }

    /**
     * Why the root passed to {@link SyncAgent#open} last replaced the trust the database held: a
     * planted, tampered or restored database (e.g. {@code "the stored root differs from the
     * firmware root"}). The config that root does not sign was dropped with it; the queue was
     * kept. Shown until a config is accepted again. A fixed sentence without contents: safe to
     * log or show.
     *
     * @return the reason, or {@code null} when the trust was not reset (or a config was accepted
     *     since)
     */
    @Nullable
    public String getTrustReset() {
        return trustReset;
    }

    /** {@inheritDoc} */
    @Override
    @NotNull
    public String toString() {
        return "ConfigInfo{rootVersion=" + rootVersion + ", configVersion=" + configVersion
                + ", expiresAt=" + rfc3339(expiresAtMillis) + ", expired=" + expired + ", regions=" + regions
                + ", country=" + country + ", approvedRegion=" + approvedRegion
                + ", refreshDueAt=" + rfc3339(refreshDueAtMillis) + ", anchored=" + anchored
                + ", trustReset=" + trustReset + "}";
    }
}

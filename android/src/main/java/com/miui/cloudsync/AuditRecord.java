package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;
import org.jetbrains.annotations.Nullable;

/**
 * One confirmed upload in the audit trail, from {@link SyncAgent#audit(long, int)}: which item
 * went to which region and host, how many bytes the server confirmed and how many this device
 * actually sent, and their SHA-256.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public final class AuditRecord {
    private final long id;
    private final long itemId;
    private final String service;
    private final String region;
    private final String host;
    private final String peerIp;
    private final long bytes;
    private final long sentBytes;
    private final String sha256;
    private final long finishedAtMillis;

    /**
     * Built by native code (signature {@code
     * (JJLjava/lang/String;Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;JJLjava/lang/String;J)V};
     * kept in {@code consumer-rules.pro}).
     */
    AuditRecord(
            long id,
            long itemId,
            @NotNull String service,
            @NotNull String region,
            @NotNull String host,
            @Nullable String peerIp,
            long bytes,
            long sentBytes,
            @NotNull String sha256,
            long finishedAtMillis) {
        this.id = id;
        this.itemId = itemId;
        this.service = service;
        this.region = region;
        this.host = host;
        this.peerIp = peerIp;
        this.bytes = bytes;
        this.sentBytes = sentBytes;
        this.sha256 = sha256;
        this.finishedAtMillis = finishedAtMillis;
    }

    /** @return the audit row id (pass the last one seen as {@code afterId} to page) */
    public long getId() {
        return id;
    }

    /** @return the queue item id that {@link SyncAgent#enqueue} returned */
    public long getItemId() {
        return itemId;
    }

    /** @return the service the item was uploaded to (e.g. {@code "backup"}) */
    @NotNull
    public String getService() {
        return service;
    }

    /** @return the id of the region the bytes went to */
    @NotNull
    public String getRegion() {
        return region;
    }

    /** @return {@code host:port} of the upload URL */
    @NotNull
    public String getHost() {
        return host;
    }

    /** @return the IP address of the peer the bytes went to, or {@code null} if unknown */
    @Nullable
    public String getPeerIp() {
        return peerIp;
    }

    /** @return the number of bytes the server confirmed: the whole file */
    public long getBytes() {
        return bytes;
    }

    /**
     * @return the number of bytes this device sent for the upload: bytes sent again after a cut
     *     connection count twice, and it is {@code 0} when the server already held the content;
     *     {@code -1} for records written by versions that did not count them
     */
    public long getSentBytes() {
        return sentBytes;
    }

    /** @return the lowercase hex SHA-256 of the content */
    @NotNull
    public String getSha256() {
        return sha256;
    }

    /** @return when the server confirmed the upload, in milliseconds since the epoch */
    public long getFinishedAtMillis() {
        return finishedAtMillis;
    }

    /** {@inheritDoc} */
    @Override
    @NotNull
    public String toString() {
        return "AuditRecord{id=" + id + ", itemId=" + itemId + ", service=" + service
                + ", region=" + region + ", host=" + host + ", peerIp=" + peerIp
                + ", bytes=" + bytes + ", sentBytes=" + sentBytes + ", sha256=" + sha256
                + ", finishedAtMillis=" + finishedAtMillis + "}";
    }
}

package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;

/**
 * A failure reported by the native agent. Checked, because every failure it reports (a bad
 * config, a full disk, a busy queue) is one the caller should decide about; programming errors
 * are unchecked instead ({@link NullPointerException} for null arguments, {@link
 * IllegalStateException} for use after {@link SyncAgent#close()}).
 *
 * <p>{@link #getKind()} is a stable snake_case name (the constants {@code KIND_*} below) and
 * {@link #getCode()} the matching stable number (the C API's status code). Subclasses group the
 * kinds: {@link ConfigException}, {@link ResidencyException}, {@link StorageException}, {@link
 * NetworkException}, {@link BusyException}; kinds without a group ({@code source_io}, {@code
 * cancelled}, {@code not_found}, {@code invalid_argument}, {@code internal}) use this class
 * itself. Messages never contain file paths, URLs or account data.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public class SyncException extends Exception {
    private static final long serialVersionUID = 1L;

    /** No valid signature from a trusted key ({@link ConfigException}). */
    public static final String KIND_BAD_SIGNATURE = "bad_signature";
    /** Fewer distinct trusted keys signed than the threshold ({@link ConfigException}). */
    public static final String KIND_THRESHOLD_NOT_MET = "threshold_not_met";
    /** An older version, or the same version with other content ({@link ConfigException}). */
    public static final String KIND_ROLLBACK = "rollback";
    /** A root version that skips ahead ({@link ConfigException}). */
    public static final String KIND_VERSION_GAP = "version_gap";
    /** The root or config expired ({@link ConfigException}). */
    public static final String KIND_EXPIRED = "expired";
    /** The envelope's payload type is not the expected one ({@link ConfigException}). */
    public static final String KIND_WRONG_PAYLOAD_TYPE = "wrong_payload_type";
    /** Bytes that do not parse ({@link ConfigException}). */
    public static final String KIND_MALFORMED = "malformed";
    /** A config endpoint breaks the residency rules ({@link ConfigException}). */
    public static final String KIND_INVALID_ENDPOINT = "invalid_endpoint";
    /** No verified config is installed ({@link ConfigException}). */
    public static final String KIND_NO_CONFIG = "no_config";
    /**
     * The trust is not anchored in the root passed to open: the database's root is newer and its
     * chain not verified yet; refresh the config ({@link ConfigException}).
     */
    public static final String KIND_ROOT_MISMATCH = "root_mismatch";
    /** No region is approved for the account ({@link ResidencyException}). */
    public static final String KIND_NO_REGION = "no_region";
    /** No account is signed in, or the account changed during the run ({@link AuthException}). */
    public static final String KIND_NO_ACCOUNT = "no_account";
    /** A host outside the approved region was refused ({@link ResidencyException}). */
    public static final String KIND_RESIDENCY = "residency";
    /** Another runner holds the queue, or the database is locked ({@link BusyException}). */
    public static final String KIND_BUSY = "busy";
    /** The database file is damaged ({@link StorageException}). */
    public static final String KIND_STORAGE_CORRUPT = "storage_corrupt";
    /** The file is not a database ({@link StorageException}). */
    public static final String KIND_NOT_A_DATABASE = "not_a_database";
    /** The database cannot be opened or written ({@link StorageException}). */
    public static final String KIND_STORAGE_UNAVAILABLE = "storage_unavailable";
    /** The disk is full ({@link StorageException}). */
    public static final String KIND_STORAGE_FULL = "storage_full";
    /** The database was written by a newer version ({@link StorageException}). */
    public static final String KIND_SCHEMA_TOO_NEW = "schema_too_new";
    /** Another database failure ({@link StorageException}). */
    public static final String KIND_STORAGE = "storage";
    /** A source file could not be read ({@link SyncException}). */
    public static final String KIND_SOURCE_IO = "source_io";
    /** The source file changed while it was uploaded; it starts again ({@link SyncException}). */
    public static final String KIND_SOURCE_CHANGED = "source_changed";
    /** Connecting, TLS or a transfer failed ({@link NetworkException}). */
    public static final String KIND_NETWORK = "network";
    /** A server broke the protocol ({@link NetworkException}). */
    public static final String KIND_PROTOCOL = "protocol";
    /** A server refused an upload for good ({@link NetworkException}). */
    public static final String KIND_REJECTED = "rejected";
    /** The server refused the credentials after a refresh, or the provider gave none or failed ({@link AuthException}). */
    public static final String KIND_UNAUTHORIZED = "unauthorized";
    /** The operation was cancelled ({@link SyncException}). */
    public static final String KIND_CANCELLED = "cancelled";
    /** No such item ({@link SyncException}). */
    public static final String KIND_NOT_FOUND = "not_found";
    /** An invalid argument ({@link SyncException}). */
    public static final String KIND_INVALID_ARGUMENT = "invalid_argument";
    /** A bug in the native agent, such as a trapped panic ({@link SyncException}). */
    public static final String KIND_INTERNAL = "internal";

    /** The stable kind name. */
    private final String kind;
    /** The stable numeric code. */
    private final int code;

    /**
     * Creates an exception. Native code uses this constructor (keep it in {@code
     * consumer-rules.pro}); apps may use it in tests.
     *
     * @param kind the stable kind name, one of the {@code KIND_*} constants
     * @param code the stable numeric code of the kind
     * @param message a human-readable description without personal data
     */
    public SyncException(@NotNull String kind, int code, @NotNull String message) {
        super(message);
        this.kind = kind;
        this.code = code;
    }

    /**
     * The stable kind name, e.g. {@code "malformed"} or {@code "busy"}.
     *
     * @return one of the {@code KIND_*} constants
     */
    @NotNull
    public String getKind() {
        return kind;
    }

    /**
     * The stable numeric code of the kind (equal to the C API's {@code cs_status}).
     *
     * @return a positive code
     */
    public int getCode() {
        return code;
    }

    /** {@inheritDoc} Includes the kind and code. */
    @Override
    @NotNull
    public String toString() {
        return getClass().getName() + "[" + kind + "/" + code + "]: " + getMessage();
    }
}

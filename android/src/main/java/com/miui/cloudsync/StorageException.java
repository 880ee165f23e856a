package com.miui.cloudsync;

import org.jetbrains.annotations.NotNull;

/**
 * A problem with the on-device database: it cannot be opened or written, is damaged, full,
 * not a database, or was written by a newer version of this library.
 *
 * <p>Kinds ({@link #getKind()}): {@code storage_corrupt}, {@code not_a_database}, {@code storage_unavailable}, {@code storage_full}, {@code schema_too_new}, {@code storage}.
 *
 * <p><b>Threading:</b> immutable; safe to pass between threads.
 */
public class StorageException extends SyncException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates an exception. Native code uses this constructor (keep it in {@code
     * consumer-rules.pro}); apps may use it in tests.
     *
     * @param kind the stable kind name
     * @param code the stable numeric code of the kind
     * @param message a human-readable description without personal data
     */
    public StorageException(@NotNull String kind, int code, @NotNull String message) {
        super(kind, code, message);
    }
}

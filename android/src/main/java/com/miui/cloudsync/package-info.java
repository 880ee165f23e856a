/**
 * Java API of the cloudsync native agent ({@code libcloudsync.so}).
 *
 * <p>Entry point: {@link com.miui.cloudsync.SyncAgent}. Failures are {@link
 * com.miui.cloudsync.SyncException}s with a stable {@code getKind()} and {@code getCode()}. A run's
 * events (item started, progress, done, failed, held) arrive through {@link
 * com.miui.cloudsync.RunListener}, or progress alone through {@link
 * com.miui.cloudsync.ProgressListener}.
 *
 * <p>Conventions: every public parameter and return value carries {@code
 * org.jetbrains.annotations.NotNull} or {@code Nullable} (read natively by Kotlin; a {@code
 * compileOnly} dependency, nothing ships at run time). Collections of objects are unmodifiable
 * {@link java.util.List}s; sequences of numbers stay {@code long[]} (the item ids of {@code
 * enqueueAll}, index for index with its paths; the root versions of a refresh). The queue's times
 * (next due, next attempt, finished) are milliseconds since the epoch in a {@code long}, {@code
 * -1} for none; the config's (expiry, refresh due) are RFC 3339 text, {@code null} for none. Names
 * (error kinds, item states) are stable snake_case strings with {@code KIND_*} / {@code STATE_*}
 * constants, and the one enum ({@link com.miui.cloudsync.RunReport.StopReason}) maps a value it
 * does not know to {@code UNKNOWN}.
 */
package com.miui.cloudsync;

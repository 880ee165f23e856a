/**
 * Java API of the cloudsync native agent ({@code libcloudsync.so}).
 *
 * <p>Entry point: {@link com.miui.cloudsync.SyncAgent}. Failures are {@link
 * com.miui.cloudsync.SyncException}s with a stable {@code getKind()} and {@code getCode()}.
 * Upload progress arrives through {@link com.miui.cloudsync.ProgressListener}.
 */
package com.miui.cloudsync;

package com.miui.cloudsync;

/**
 * The JNI entry points of {@code libcloudsync.so} (implemented in {@code src/ffi/jni/}).
 *
 * <p>Package-private: only {@link SyncAgent} (and tests in this package) call these. The
 * handles are raw pointers owned by a {@link SyncAgent}, which guarantees that a handle is never
 * used after {@link #close(long)}. Every method may throw a {@link SyncException} subclass built
 * by native code; a panic in native code arrives as a {@link SyncException} of kind {@code
 * internal}. Null arguments are rejected with kind {@code invalid_argument}, never a crash.
 *
 * <p>Method names and signatures are part of the native ABI: keep them in sync with {@code
 * src/ffi/jni/} and {@code consumer-rules.pro}.
 */
final class NativeBridge {
    static {
        System.loadLibrary("cloudsync");
    }

    private NativeBridge() {}

    static native long open(String dbPath, byte[] initialRoot) throws SyncException;

    /** Only in native builds with the {@code ffi-test-hooks} feature ({@link UnsatisfiedLinkError} otherwise). */
    static native long openForTest(String dbPath, byte[] initialRoot, byte[] extraCaPem)
            throws SyncException;

    static native void install(long handle, byte[] envelope) throws SyncException;

    static native ConfigInfo configInfo(long handle) throws SyncException;

    static native ConfigRefresh refreshConfig(long handle) throws SyncException;

    static native void setAccountCountry(long handle, String iso2) throws SyncException;

    static native void setAccount(long handle, String accountId, String iso2) throws SyncException;

    static native void setCredentialProvider(long handle, CredentialProvider provider)
            throws SyncException;

    static native String approvedRegion(long handle) throws SyncException;

    /** The account state's native name: {@code never_set}, {@code signed_out} or {@code signed_in}. */
    static native String accountState(long handle) throws SyncException;

    static native long enqueue(long handle, String path, String service, int priority)
            throws SyncException;

    static native long[] enqueueAll(long handle, String[] paths, String service, int priority)
            throws SyncException;

    /**
     * {@code events}: {@code listener} is a {@link RunListener} and gets every event; otherwise
     * only {@code onProgress}.
     */
    static native RunReport runOnce(
            long handle, long maxMillis, ProgressListener listener, boolean events)
            throws SyncException;

    static native void cancel(long handle) throws SyncException;

    static native QueueStats stats(long handle) throws SyncException;

    static native AuditRecord[] audit(long handle, long afterId, int limit) throws SyncException;

    /** The item, or none (an empty array) when it is no longer queued. */
    static native ItemInfo[] item(long handle, long id) throws SyncException;

    /** {@code state}: a state name, or {@code null} for all; ids above {@code afterId}. */
    static native ItemInfo[] listItems(long handle, String state, long afterId, int limit)
            throws SyncException;

    static native long retryDead(long handle) throws SyncException;

    /** {@code false} when the item is no longer queued. */
    static native boolean remove(long handle, long id) throws SyncException;

    static native String version() throws SyncException;

    static native long rehome(long handle) throws SyncException;

    static native long rehomeTo(long handle, String expectedRegion) throws SyncException;

    static native long discardHeld(long handle) throws SyncException;

    static native int auditRetentionDays(long handle) throws SyncException;

    static native long setAuditRetentionDays(long handle, int days) throws SyncException;

    static native long pruneAudit(long handle) throws SyncException;

    static native void close(long handle) throws SyncException;

    /** Panics in native code. Only with {@code ffi-test-hooks}. */
    static native void nativePanicForTest() throws SyncException;

    /**
     * Throws the exception of the {@code index}-th native error kind, or returns normally when
     * {@code index} is past the last kind. Only with {@code ffi-test-hooks}.
     */
    static native void nativeErrorForTest(int index) throws SyncException;
}

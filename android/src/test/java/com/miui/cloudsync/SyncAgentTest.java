package com.miui.cloudsync;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Host-JVM tests of the Java API over the host build of {@code libcloudsync.so} (built with
 * {@code ffi-test-hooks}); run by {@code scripts/test-jvm.sh} under {@code java -Xcheck:jni}.
 *
 * <p>Tests marked "dev server" need {@code CLOUDSYNC_DEVSERVER_READY} (the ready file of {@code
 * cloudsync dev-server}, started by the script) and are skipped without it.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
// Also checks that the string getters deprecated by issue 24 still return what they did.
@SuppressWarnings("deprecation")
class SyncAgentTest {
    private static final TestEnvelopes.Key ROOT_KEY = new TestEnvelopes.Key();
    private static final TestEnvelopes.Key CONFIG_KEY = new TestEnvelopes.Key();
    private static final byte[] ROOT = TestEnvelopes.root(ROOT_KEY, CONFIG_KEY);

    @TempDir Path dir;

    private final ExecutorService pool = Executors.newCachedThreadPool();

    @AfterEach
    void stopPool() throws InterruptedException {
        pool.shutdownNow();
        assertTrue(pool.awaitTermination(60, TimeUnit.SECONDS), "test threads finished");
    }

    private String dbPath() {
        return dir.resolve("cloudsync.db").toString();
    }

    private SyncAgent open() throws SyncException {
        return SyncAgent.open(dbPath(), ROOT);
    }

    private String file(String name, int size) throws IOException {
        byte[] b = new byte[size];
        new Random(name.hashCode()).nextBytes(b);
        Path p = dir.resolve(name);
        Files.write(p, b);
        return p.toAbsolutePath().toString();
    }

    /** A file of {@code size} zero bytes, allocated sparsely (fast even when large). */
    private String sparseFile(String name, long size) throws IOException {
        Path p = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        return p.toAbsolutePath().toString();
    }

    private static void assertKind(SyncException e, Class<?> cls, String kind, int code) {
        assertEquals(cls, e.getClass(), e.toString());
        assertEquals(kind, e.getKind(), e.toString());
        assertEquals(code, e.getCode(), e.toString());
        assertNotNull(e.getMessage());
        assertFalse(e.getMessage().isEmpty());
    }

    // ---------------------------------------------------------------- exceptions

    @Test
    void garbageEnvelopesAreConfigExceptions() throws Exception {
        byte[] garbage = "not an envelope".getBytes(StandardCharsets.UTF_8);
        ConfigException e = assertThrows(ConfigException.class, () -> SyncAgent.open(dbPath(), garbage));
        assertKind(e, ConfigException.class, SyncException.KIND_MALFORMED, 16);
        try (SyncAgent a = open()) {
            e = assertThrows(ConfigException.class, () -> a.installConfig(garbage));
            assertKind(e, ConfigException.class, "malformed", 16);
            e = assertThrows(ConfigException.class, () -> a.installConfig(new byte[0]));
            assertKind(e, ConfigException.class, "malformed", 16);
            // Signed by a key the root does not list.
            byte[] stranger = TestEnvelopes.loopbackConfig(new TestEnvelopes.Key(), 1, 443);
            e = assertThrows(ConfigException.class, () -> a.installConfig(stranger));
            assertKind(e, ConfigException.class, "bad_signature", 10);
            // Rollback: version 2, then version 1.
            a.installConfig(TestEnvelopes.loopbackConfig(CONFIG_KEY, 2, 443));
            byte[] older = TestEnvelopes.loopbackConfig(CONFIG_KEY, 1, 443);
            e = assertThrows(ConfigException.class, () -> a.installConfig(older));
            assertKind(e, ConfigException.class, "rollback", 12);
            assertEquals(2, a.configInfo().getConfigVersion(), "the last good config stays");
        }
    }

    @Test
    void unopenableDatabasesAreStorageExceptions() throws Exception {
        String missingDir = dir.resolve("no-such-dir").resolve("cloudsync.db").toString();
        StorageException e = assertThrows(StorageException.class, () -> SyncAgent.open(missingDir, ROOT));
        assertKind(e, StorageException.class, SyncException.KIND_STORAGE_UNAVAILABLE, 42);

        Path notDb = dir.resolve("not-a-db");
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 200; i++) {
            text.append("this is not an SQLite database\n");
        }
        Files.write(notDb, text.toString().getBytes(StandardCharsets.UTF_8));
        e = assertThrows(StorageException.class, () -> SyncAgent.open(notDb.toString(), ROOT));
        assertKind(e, StorageException.class, SyncException.KIND_NOT_A_DATABASE, 41);
    }

    @Test
    void uploadsAreOffWithoutConfigOrRegion() throws Exception {
        try (SyncAgent a = open()) {
            ConfigException c = assertThrows(ConfigException.class, () -> a.runOnce(1000, null));
            assertKind(c, ConfigException.class, SyncException.KIND_NO_CONFIG, 18);
            a.installConfig(TestEnvelopes.loopbackConfig(CONFIG_KEY, 1, 443));
            ResidencyException r = assertThrows(ResidencyException.class, () -> a.runOnce(1000, null));
            assertKind(r, ResidencyException.class, SyncException.KIND_NO_REGION, 20);
            r = assertThrows(ResidencyException.class, a::rehome);
            assertKind(r, ResidencyException.class, "no_region", 20);
            a.setAccountCountry("FR"); // not mapped, and the config has no "*" default
            assertNull(a.approvedRegion());
            r = assertThrows(ResidencyException.class, () -> a.runOnce(1000, null));
            assertKind(r, ResidencyException.class, "no_region", 20);
            SyncException s = assertThrows(SyncException.class, () -> a.runOnce(-1, null));
            assertKind(s, SyncException.class, SyncException.KIND_INVALID_ARGUMENT, 62);
        }
    }

    @Test
    void everyNativeErrorKindMapsToItsExceptionClass() throws Exception {
        Map<String, Class<?>> cls = new HashMap<>();
        Map<String, Integer> code = new HashMap<>();
        Object[][] table = {
            {"bad_signature", 10, ConfigException.class},
            {"threshold_not_met", 11, ConfigException.class},
            {"rollback", 12, ConfigException.class},
            {"version_gap", 13, ConfigException.class},
            {"expired", 14, ConfigException.class},
            {"wrong_payload_type", 15, ConfigException.class},
            {"malformed", 16, ConfigException.class},
            {"invalid_endpoint", 17, ConfigException.class},
            {"no_config", 18, ConfigException.class},
            {"root_mismatch", 19, ConfigException.class},
            {"no_region", 20, ResidencyException.class},
            {"residency", 21, ResidencyException.class},
            {"no_account", 22, AuthException.class},
            {"busy", 30, BusyException.class},
            {"storage_corrupt", 40, StorageException.class},
            {"not_a_database", 41, StorageException.class},
            {"storage_unavailable", 42, StorageException.class},
            {"storage_full", 43, StorageException.class},
            {"schema_too_new", 44, StorageException.class},
            {"storage", 45, StorageException.class},
            {"source_io", 46, SyncException.class},
            {"source_changed", 47, SyncException.class},
            {"network", 50, NetworkException.class},
            {"protocol", 51, NetworkException.class},
            {"rejected", 52, NetworkException.class},
            {"unauthorized", 53, AuthException.class},
            {"cancelled", 60, SyncException.class},
            {"not_found", 61, SyncException.class},
            {"invalid_argument", 62, SyncException.class},
            {"internal", 99, SyncException.class},
        };
        for (Object[] row : table) {
            cls.put((String) row[0], (Class<?>) row[2]);
            code.put((String) row[0], (Integer) row[1]);
        }
        Set<String> seen = new HashSet<>();
        for (int i = 0; ; i++) {
            try {
                NativeBridge.nativeErrorForTest(i);
                break; // past the last kind
            } catch (SyncException e) {
                assertTrue(seen.add(e.getKind()), "kind reported twice: " + e.getKind());
                assertTrue(cls.containsKey(e.getKind()), "kind unknown to Java: " + e.getKind());
                assertKind(e, cls.get(e.getKind()), e.getKind(), code.get(e.getKind()));
            }
        }
        assertEquals(cls.keySet(), seen, "every kind the library has, and no other");
        NativeBridge.nativeErrorForTest(-1); // out of range: no exception

        Set<String> constants = new HashSet<>();
        for (Field f : SyncException.class.getFields()) {
            if (f.getName().startsWith("KIND_") && Modifier.isStatic(f.getModifiers())) {
                constants.add((String) f.get(null));
            }
        }
        assertEquals(seen, constants, "SyncException.KIND_* lists exactly the native kinds");
    }

    @Test
    void nativePanicArrivesAsInternalSyncException() throws Exception {
        for (int i = 0; i < 3; i++) {
            SyncException e = assertThrows(SyncException.class, NativeBridge::nativePanicForTest);
            assertKind(e, SyncException.class, SyncException.KIND_INTERNAL, 99);
            assertTrue(e.getMessage().contains("panic"), e.getMessage());
        }
        // The JVM and the library are still fine.
        try (SyncAgent a = open()) {
            a.enqueue(file("after-panic", 10), "backup", 0);
            assertEquals(1, a.stats().getPending());
        }
    }

    // ---------------------------------------------------------------- arguments and lifecycle

    @Test
    void nullArgumentsThrowAndNeverCrash() throws Exception {
        String f = file("x", 10);
        assertThrows(NullPointerException.class, () -> SyncAgent.open(null, ROOT));
        assertThrows(NullPointerException.class, () -> SyncAgent.open(dbPath(), null));
        try (SyncAgent a = open()) {
            assertThrows(NullPointerException.class, () -> a.installConfig(null));
            assertThrows(NullPointerException.class, () -> a.setAccountCountry(null));
            assertThrows(NullPointerException.class, () -> a.enqueue(null, "backup", 0));
            assertThrows(NullPointerException.class, () -> a.enqueue(f, null, 0));
            assertThrows(NullPointerException.class, () -> a.enqueueAll(null, "backup", 0));
            assertThrows(NullPointerException.class, () -> a.enqueueAll(new String[] {f, null}, "backup", 0));
            assertThrows(NullPointerException.class, () -> a.enqueueAll(new String[] {f}, null, 0));
            assertEquals(0, a.stats().getPending(), "nothing was queued");
        }

        // The native layer itself rejects nulls (and a zero handle) without crashing.
        List<ThrowingRunnable> calls = new ArrayList<>();
        calls.add(() -> NativeBridge.open(null, ROOT));
        calls.add(() -> NativeBridge.open(dbPath(), null));
        calls.add(() -> NativeBridge.open("", ROOT));
        calls.add(() -> NativeBridge.openForTest(dbPath(), ROOT, null));
        calls.add(() -> NativeBridge.install(0, new byte[1]));
        calls.add(() -> NativeBridge.configInfo(0));
        calls.add(() -> NativeBridge.stats(0));
        calls.add(() -> NativeBridge.runOnce(0, 10, null, false));
        calls.add(() -> NativeBridge.runOnce(0, 10, null, true));
        calls.add(() -> NativeBridge.item(0, 1));
        calls.add(() -> NativeBridge.listItems(0, null, 0, 10));
        calls.add(() -> NativeBridge.retryDead(0));
        calls.add(() -> NativeBridge.remove(0, 1));
        calls.add(() -> NativeBridge.cancel(0));
        calls.add(() -> NativeBridge.audit(0, 0, 10));
        calls.add(() -> NativeBridge.rehome(0));
        calls.add(() -> NativeBridge.discardHeld(0));
        long h = NativeBridge.open(dbPath(), ROOT);
        try {
            calls.add(() -> NativeBridge.install(h, null));
            calls.add(() -> NativeBridge.setAccountCountry(h, null));
            calls.add(() -> NativeBridge.enqueue(h, null, "backup", 0));
            calls.add(() -> NativeBridge.enqueue(h, f, null, 0));
            calls.add(() -> NativeBridge.enqueueAll(h, null, "backup", 0));
            calls.add(() -> NativeBridge.enqueueAll(h, new String[] {f, null}, "backup", 0));
            calls.add(() -> NativeBridge.enqueueAll(h, new String[] {f}, null, 0));
            calls.add(() -> NativeBridge.audit(h, 0, -1));
            calls.add(() -> NativeBridge.listItems(h, null, 0, -1));
            calls.add(() -> NativeBridge.listItems(h, "no_such_state", 0, 10));
            calls.add(() -> NativeBridge.listItems(h, null, -1, 10));
            calls.add(() -> NativeBridge.listItems(h, "pending", Long.MIN_VALUE, 10));
            calls.add(() -> NativeBridge.audit(h, -1, 10));
            for (ThrowingRunnable c : calls) {
                SyncException e = assertThrows(SyncException.class, c::run);
                assertKind(e, SyncException.class, SyncException.KIND_INVALID_ARGUMENT, 62);
            }
            assertEquals(0, NativeBridge.stats(h).getPending(), "all-or-none enqueueAll queued nothing");
        } finally {
            NativeBridge.close(h);
        }
        NativeBridge.close(0); // a no-op
    }

    interface ThrowingRunnable {
        void run() throws Exception;
    }

    @Test
    void useAfterCloseIsIllegalStateAndCloseIsIdempotent() throws Exception {
        SyncAgent a = open();
        String f = file("x", 10);
        a.close();
        assertTrue(a.isClosed());
        List<ThrowingRunnable> calls = Arrays.asList(
                () -> a.installConfig(new byte[1]),
                a::configInfo,
                () -> a.setAccountCountry("IN"),
                a::approvedRegion,
                () -> a.enqueue(f, "backup", 0),
                () -> a.enqueueAll(new String[] {f}, "backup", 0),
                () -> a.runOnce(10, null),
                () -> a.runOnce(10, (ProgressListener) null),
                a::stats,
                () -> a.audit(0, 10),
                () -> a.getItem(1),
                () -> a.listItemsIn(null, 0, 10),
                a::retryDead,
                () -> a.remove(1),
                a::rehome,
                a::discardHeld);
        for (ThrowingRunnable c : calls) {
            assertThrows(IllegalStateException.class, c::run);
        }
        a.close();
        a.close();
        a.cancel(); // a no-op once closed
        // The database was released: it opens again with its content.
        try (SyncAgent b = open()) {
            assertEquals(1, b.configInfo().getRootVersion());
        }
    }

    @Test
    void queueBasics() throws Exception {
        try (SyncAgent a = open()) {
            ConfigInfo info = a.configInfo();
            assertEquals(1, info.getRootVersion());
            assertFalse(info.hasConfig());
            assertEquals(-1, info.getConfigVersion());
            assertTrue(info.getRegions().isEmpty());
            assertNull(info.getCountry());
            assertNull(a.approvedRegion());

            byte[] config = TestEnvelopes.loopbackConfig(CONFIG_KEY, 1, 443);
            a.installConfig(config);
            a.installConfig(config); // the same bytes again: a no-op
        }
        try (SyncAgent a = open()) {
            a.setAccountCountry("in");
            ConfigInfo info = a.configInfo();
            assertTrue(info.hasConfig());
            assertEquals(1, info.getConfigVersion());
            assertEquals(Collections.singletonList("lo"), info.getRegions());
            assertEquals("IN", info.getCountry());
            assertEquals("lo", info.getApprovedRegion());
            assertEquals("lo", a.approvedRegion());
            assertFalse(info.isExpired());
            assertNotNull(info.getExpiresAt());
            SyncException bad = assertThrows(SyncException.class, () -> a.setAccountCountry("IND"));
            assertKind(bad, SyncException.class, "invalid_argument", 62);

            String[] paths = {file("a", 100), file("b", 200), file("c", 300)};
            long[] ids = a.enqueueAll(paths, "backup", 5);
            assertEquals(3, ids.length);
            assertTrue(ids[0] < ids[1] && ids[1] < ids[2]);
            long one = a.enqueue(file("d", 400), "backup", 0);
            assertTrue(one > ids[2]);
            QueueStats s = a.stats();
            assertEquals(4, s.getPending());
            assertEquals(1000, s.getPendingBytes());
            assertEquals(0, s.getDone());
            assertEquals(0, a.audit(0, 10).size());
            assertEquals(0, a.discardHeld());
            assertEquals(0, a.rehome());

            SyncException rel = assertThrows(SyncException.class, () -> a.enqueue("relative/path", "backup", 0));
            assertKind(rel, SyncException.class, "invalid_argument", 62);
            String gone = dir.resolve("missing-file").toAbsolutePath().toString();
            SyncException io = assertThrows(SyncException.class, () -> a.enqueue(gone, "backup", 0));
            assertKind(io, SyncException.class, "source_io", 46);
            // All or none: one bad path queues nothing.
            assertThrows(SyncException.class, () -> a.enqueueAll(new String[] {paths[0], gone}, "backup", 0));
            assertEquals(4, a.stats().getPending());
        }
    }

    // ---------------------------------------------------------------- runs (loopback, no dev server)

    /**
     * A TCP server on 127.0.0.1 that accepts connections and never answers: a run that reaches it
     * stays in progress (waiting for the TLS handshake) until the server closes.
     */
    static final class HangingServer implements AutoCloseable {
        final ServerSocket server;
        final List<Socket> accepted = Collections.synchronizedList(new ArrayList<>());
        final CountDownLatch connected = new CountDownLatch(1);
        final Thread acceptor;

        HangingServer() throws IOException {
            server = new ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"));
            acceptor = new Thread(() -> {
                try {
                    while (true) {
                        Socket s = server.accept();
                        accepted.add(s);
                        connected.countDown();
                    }
                } catch (IOException closed) {
                    // close() ends the loop
                }
            }, "hanging-server");
            acceptor.setDaemon(true);
            acceptor.start();
        }

        int port() {
            return server.getLocalPort();
        }

        /** Stops accepting and drops every connection: a run waiting on it fails at once. */
        void release() throws IOException {
            server.close();
            synchronized (accepted) {
                for (Socket s : accepted) {
                    s.close();
                }
            }
            try {
                acceptor.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        @Override
        public void close() throws IOException {
            release();
        }
    }

    /** An agent whose approved region points at {@code server}, with one item queued. */
    private SyncAgent agentFor(HangingServer server) throws Exception {
        SyncAgent a = open();
        a.installConfig(TestEnvelopes.loopbackConfig(CONFIG_KEY, 1, server.port()));
        a.setAccountCountry("IN");
        a.enqueue(file("first", 1000), "backup", 0);
        return a;
    }

    @Test
    void secondRunnerOnTheSameDatabaseIsBusy() throws Exception {
        try (HangingServer server = new HangingServer(); SyncAgent a = agentFor(server)) {
            Future<RunReport> run = pool.submit(() -> a.runOnce(60_000, null));
            assertTrue(server.connected.await(30, TimeUnit.SECONDS), "the run reached the server");
            try (SyncAgent b = open()) {
                BusyException e = assertThrows(BusyException.class, () -> b.runOnce(1000, null));
                assertKind(e, BusyException.class, SyncException.KIND_BUSY, 30);
                // A second run on the same agent is refused the same way.
                e = assertThrows(BusyException.class, () -> a.runOnce(1000, null));
                assertKind(e, BusyException.class, "busy", 30);
                assertEquals(1, b.stats().getUploading(), "the first run holds its item");
            }
            assertFalse(run.isDone());
            a.cancel();
            server.release();
            RunReport r = run.get(60, TimeUnit.SECONDS);
            assertEquals(RunReport.StopReason.CANCELLED, r.getStopped(), r.toString());
            assertEquals("lo", r.getRegion());
            assertEquals(0, r.getUploaded());
            // Cancel interrupts the blocked handshake; a cancelled attempt is no failure.
            assertEquals(0, r.getFailed(), r.toString());
            QueueStats s = a.stats();
            assertEquals(1, s.getPending(), s.toString());
            assertEquals(0, s.getUploading() + s.getFailed(), s.toString());
            // The lease was released: another agent may run now (the server is gone, so its
            // attempt fails instead of being refused as busy).
            try (SyncAgent b = open()) {
                RunReport again = b.runOnce(5000, null);
                assertEquals(RunReport.StopReason.DRAINED, again.getStopped(), again.toString());
                assertEquals(1, again.getFailed(), again.toString());
            }
        }
    }

    @Test
    void eightThreadsEnqueueAndReadWhileRunOnceRuns() throws Exception {
        final int threads = 8;
        final int perThread = 20;
        String[][] files = new String[threads][perThread];
        for (int t = 0; t < threads; t++) {
            for (int i = 0; i < perThread; i++) {
                files[t][i] = file("f-" + t + "-" + i, 64 + i);
            }
        }
        try (HangingServer server = new HangingServer(); SyncAgent a = agentFor(server)) {
            Future<RunReport> run = pool.submit(() -> a.runOnce(60_000, null));
            assertTrue(server.connected.await(30, TimeUnit.SECONDS), "the run reached the server");

            Set<Long> ids = ConcurrentHashMap.newKeySet();
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> workers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                final String[] mine = files[t];
                workers.add(pool.submit(() -> {
                    start.await();
                    for (String f : mine) {
                        assertTrue(ids.add(a.enqueue(f, "backup", 1)));
                        QueueStats s = a.stats();
                        assertTrue(s.getQueued() >= 1);
                        assertEquals("lo", a.approvedRegion());
                        assertEquals(1, a.configInfo().getConfigVersion());
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> w : workers) {
                w.get(60, TimeUnit.SECONDS);
            }
            assertEquals(threads * perThread, ids.size());
            assertFalse(run.isDone(), "the run was in progress the whole time");

            a.cancel();
            server.release();
            RunReport r = run.get(60, TimeUnit.SECONDS);
            assertEquals(RunReport.StopReason.CANCELLED, r.getStopped(), r.toString());
            QueueStats s = a.stats();
            assertEquals(threads * perThread + 1, s.getQueued(), s.toString());
            assertEquals(0, s.getUploading(), s.toString());
        }
    }

    @Test
    void closeWaitsForCallsInFlightAndCancelsTheRun() throws Exception {
        try (HangingServer server = new HangingServer()) {
            SyncAgent a = agentFor(server);
            Future<RunReport> run = pool.submit(() -> a.runOnce(60_000, null));
            assertTrue(server.connected.await(30, TimeUnit.SECONDS));
            Future<?> closing = pool.submit(() -> {
                a.close();
                return null;
            });
            // close() cancelled the run and now waits for it; the run waits for the network.
            Thread.sleep(200);
            assertFalse(closing.isDone(), "close waits for the run in flight");
            a.cancel(); // must not block while close() waits
            server.release();
            RunReport r = run.get(60, TimeUnit.SECONDS);
            assertEquals(RunReport.StopReason.CANCELLED, r.getStopped());
            closing.get(60, TimeUnit.SECONDS);
            assertTrue(a.isClosed());
            assertThrows(IllegalStateException.class, a::stats);
        }
    }

    // ---------------------------------------------------------------- trust lives in the database (issue 10)

    /** A config with regions {@code in} (IN) and {@code sg} (SG) whose hosts are never contacted. */
    private static final byte[] TWO_REGIONS = TestEnvelopes.twoRegionConfig(CONFIG_KEY, 1);

    @Test
    void heldAtOnceAfterSetAccountCountry() throws Exception {
        try (SyncAgent a = open()) {
            a.installConfig(TWO_REGIONS);
            a.setAccountCountry("IN");
            assertEquals("in", a.approvedRegion());
            a.enqueueAll(new String[] {file("h1", 100), file("h2", 200), file("h3", 300)}, "backup", 0);
            QueueStats s = a.stats();
            assertEquals(3, s.getPending(), s.toString());
            assertEquals(0, s.getHeld(), s.toString());

            // No run in between: the country change itself holds the items.
            a.setAccountCountry("SG");
            s = a.stats();
            assertEquals(3, s.getHeld(), "held at once: " + s);
            assertEquals(0, s.getPending(), s.toString());
            assertEquals("sg", a.approvedRegion());

            try (SyncAgent b = open()) {
                QueueStats sb = b.stats();
                assertEquals(3, sb.getHeld(), "a second agent on the same database: " + sb);
                assertEquals(0, sb.getPending(), sb.toString());
                assertEquals("sg", b.approvedRegion());
                assertEquals("SG", b.configInfo().getCountry());

                // Back home: the items are pending again, for both agents, at once.
                a.setAccountCountry("IN");
                s = a.stats();
                assertEquals(0, s.getHeld(), s.toString());
                assertEquals(3, s.getPending(), s.toString());
                assertEquals(s, b.stats(), "both agents read the same queue");
                assertEquals("in", b.approvedRegion());
            }
        }
    }

    @Test
    void consentBoundRehomeRefusesAfterTheAccountMovedAgain() throws Exception {
        try (SyncAgent a = open(); SyncAgent b = open()) {
            a.installConfig(TWO_REGIONS);
            a.setAccountCountry("IN");
            a.enqueueAll(new String[] {file("c1", 100), file("c2", 200)}, "backup", 0);
            a.setAccountCountry("SG");
            String asked = a.approvedRegion(); // "move 2 backups to sg?"
            assertEquals("sg", asked);
            assertEquals(2, a.stats().getHeld());
            b.setAccountCountry("IN"); // meanwhile, through another agent
            ResidencyException e = assertThrows(ResidencyException.class, () -> a.rehome(asked));
            assertKind(e, ResidencyException.class, SyncException.KIND_RESIDENCY, 21);
            QueueStats s = b.stats();
            assertEquals(0, s.getHeld(), "moving back made them pending again: " + s);
            assertEquals(2, s.getPending(), s.toString());
            b.setAccountCountry("SG");
            assertEquals(2, a.rehome("sg"));
            s = b.stats();
            assertEquals(0, s.getHeld(), s.toString());
            assertEquals(2, s.getPending(), s.toString());
            assertThrows(NullPointerException.class, () -> a.rehome(null));
        }
    }

    @Test
    void openWithJunkRootOnExistingDatabaseFails() throws Exception {
        try (SyncAgent a = open()) {
            a.installConfig(TWO_REGIONS);
            a.setAccountCountry("IN");
        }
        // Junk is malformed even though the database already trusts a root.
        ConfigException e = assertThrows(ConfigException.class,
                () -> SyncAgent.open(dbPath(), "junk".getBytes(StandardCharsets.UTF_8)));
        assertKind(e, ConfigException.class, SyncException.KIND_MALFORMED, 16);
        // That attempt changed nothing.
        try (SyncAgent a = open()) {
            ConfigInfo info = a.configInfo();
            assertEquals(1, info.getRootVersion(), info.toString());
            assertEquals(1, info.getConfigVersion(), info.toString());
            assertEquals("IN", info.getCountry(), info.toString());
            assertNull(info.getTrustReset(), info.toString());
            assertEquals("in", a.approvedRegion());
        }
        // A well-formed root of the stored root's version, with other keys, is the anchor (issue
        // 21): put in force over the stored trust, which it cannot vouch for, and the config it
        // does not sign dropped; the reason is shown. AnchorTest covers planted databases.
        byte[] otherRoot = TestEnvelopes.root(new TestEnvelopes.Key(), new TestEnvelopes.Key());
        try (SyncAgent a = SyncAgent.open(dbPath(), otherRoot)) {
            ConfigInfo info = a.configInfo();
            assertEquals("the stored root differs from the firmware root", info.getTrustReset(),
                    info.toString());
            assertTrue(info.isAnchored(), info.toString());
            assertFalse(info.hasConfig(), info.toString());
            assertEquals("IN", info.getCountry(), info.toString());
        }
        // ROOT resets it back the same way; installing the config again ends the reset.
        try (SyncAgent a = open()) {
            ConfigInfo info = a.configInfo();
            assertNotNull(info.getTrustReset(), info.toString());
            assertFalse(info.hasConfig(), info.toString());
            a.installConfig(TWO_REGIONS);
            info = a.configInfo();
            assertNull(info.getTrustReset(), info.toString());
            assertEquals(1, info.getConfigVersion(), info.toString());
            assertEquals("in", a.approvedRegion());
        }
    }

    @Test
    void staleAgentCannotRollBackCountry() throws Exception {
        try (SyncAgent a = open(); SyncAgent b = open()) {
            // Both opened before any config: A's view is stale from here on.
            assertNull(a.approvedRegion());
            b.installConfig(TWO_REGIONS);
            b.setAccountCountry("IN");
            assertEquals("in", a.approvedRegion(), "A reads the database, not its memory");
            ConfigInfo ia = a.configInfo();
            assertEquals(1, ia.getConfigVersion(), ia.toString());
            assertEquals("IN", ia.getCountry(), ia.toString());

            a.setAccountCountry("SG");
            ConfigInfo ib = b.configInfo();
            assertEquals("SG", ib.getCountry(), ib.toString());
            assertEquals("sg", ib.getApprovedRegion(), ib.toString());
            assertEquals(1, ib.getConfigVersion(), "A's write kept B's config: " + ib);
            assertEquals("sg", b.approvedRegion());

            // Nor can a stale agent roll the config back: B moves to v2, A offers v1 again.
            b.installConfig(TestEnvelopes.twoRegionConfig(CONFIG_KEY, 2));
            ConfigException e = assertThrows(ConfigException.class, () -> a.installConfig(TWO_REGIONS));
            assertKind(e, ConfigException.class, SyncException.KIND_ROLLBACK, 12);
            assertEquals(2, b.configInfo().getConfigVersion());
            assertEquals(2, a.configInfo().getConfigVersion());
            assertEquals("SG", b.configInfo().getCountry(), "the country survived B's install");
        }
    }

    // ---------------------------------------------------------------- dev server (full flow)

    /** The ready file of {@code cloudsync dev-server}. */
    static final class DevServer {
        final byte[] root;
        final byte[] config;
        final byte[] caPem;
        /** The server's --dir: root.json lives there, and each region stores uploads in {@code <dir>/<region>/}. */
        final Path dir;
        final Map<String, Integer> ports = new HashMap<>();

        DevServer(String json) throws IOException {
            Path rootPath = Paths.get(field(json, "root"));
            root = Files.readAllBytes(rootPath);
            dir = rootPath.getParent();
            config = Files.readAllBytes(Paths.get(field(json, "config")));
            caPem = Files.readAllBytes(Paths.get(field(json, "ca_pem")));
            Matcher m = Pattern.compile("\"([a-z]+)\"\\s*:\\s*\\{[^{}]*?\"port\"\\s*:\\s*(\\d+)").matcher(json);
            while (m.find()) {
                ports.put(m.group(1), Integer.parseInt(m.group(2)));
            }
        }

        private static String field(String json, String name) {
            Matcher m = Pattern.compile("\"" + name + "\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"").matcher(json);
            assertTrue(m.find(), "ready file has " + name);
            return m.group(1).replace("\\\\", "\\").replace("\\/", "/");
        }
    }

    private static DevServer devServer() throws IOException {
        String ready = System.getenv("CLOUDSYNC_DEVSERVER_READY");
        Assumptions.assumeTrue(ready != null && !ready.isEmpty(),
                "CLOUDSYNC_DEVSERVER_READY not set (scripts/test-jvm.sh starts cloudsync dev-server)");
        return new DevServer(new String(Files.readAllBytes(Paths.get(ready)), StandardCharsets.UTF_8));
    }

    private SyncAgent openDev(DevServer d) throws SyncException {
        SyncAgent a = SyncAgent.openForTest(dbPath(), d.root, d.caPem);
        a.installConfig(d.config);
        a.setAccountCountry("IN");
        return a;
    }

    private static String sha256(String path) throws Exception {
        return TestEnvelopes.hex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(Paths.get(path))));
    }

    @Test
    void fullFlowAgainstTheDevServer() throws Exception {
        DevServer d = devServer();
        try (SyncAgent a = openDev(d)) {
            assertEquals("in", a.approvedRegion());
            ConfigInfo info = a.configInfo();
            assertTrue(info.getRegions().contains("in"), info.toString());
            assertEquals("in", info.getApprovedRegion());

            String[] paths = {file("one", 1000), file("two", 3 * 1024 * 1024 + 17), file("three", 1)};
            long[] ids = a.enqueueAll(paths, "backup", 0);
            Map<Long, long[]> last = new HashMap<>();
            Thread caller = Thread.currentThread();
            AtomicInteger otherThread = new AtomicInteger();
            RunReport r = a.runOnce(60_000, (item, sent, total) -> {
                if (Thread.currentThread() != caller) {
                    otherThread.incrementAndGet();
                }
                long[] prev = last.get(item);
                assertTrue(prev == null || prev[0] <= sent, "progress never goes back");
                assertTrue(sent <= total);
                last.put(item, new long[] {sent, total});
            });
            assertEquals(0, otherThread.get(), "the listener runs on the calling thread");
            assertEquals(RunReport.StopReason.DRAINED, r.getStopped(), r.toString());
            assertEquals("in", r.getRegion());
            assertEquals(3, r.getUploaded(), r.toString());
            assertEquals(1000 + 3 * 1024 * 1024 + 17 + 1, r.getBytes());
            assertEquals(0, r.getRemaining());
            for (int i = 0; i < 3; i++) {
                long[] p = last.get(ids[i]);
                assertNotNull(p, "progress for item " + ids[i]);
                assertEquals(p[1], p[0], "the last report of an item is complete");
                assertEquals(Files.size(Paths.get(paths[i])), p[1]);
            }

            List<AuditRecord> recs = a.audit(0, 100);
            assertEquals(3, recs.size());
            Map<Long, Integer> index = new HashMap<>();
            for (int i = 0; i < 3; i++) {
                index.put(ids[i], i);
            }
            for (AuditRecord rec : recs) {
                int i = index.get(rec.getItemId());
                assertEquals("in", rec.getRegion());
                assertEquals("backup", rec.getService());
                assertTrue(rec.getHost().endsWith(":" + d.ports.get("in")), rec.toString());
                assertEquals(Files.size(Paths.get(paths[i])), rec.getBytes());
                // One clean run: every byte sent once.
                assertEquals(rec.getBytes(), rec.getSentBytes(), rec.toString());
                assertEquals(sha256(paths[i]), rec.getSha256());
                assertTrue(rec.getFinishedAtMillis() > 0);
            }
            assertEquals(0, a.audit(recs.get(recs.size() - 1).getId(), 100).size());
            assertEquals(1, a.audit(recs.get(1).getId(), 100).size());
            QueueStats s = a.stats();
            assertEquals(0, s.getQueued(), s.toString());
            assertEquals(3, s.getDone());
        }
    }

    @Test
    void aThrowingListenerCancelsTheRunAndItsExceptionIsRethrown() throws Exception {
        DevServer d = devServer();
        try (SyncAgent a = openDev(d)) {
            String big = sparseFile("big", 16L * 1024 * 1024);
            a.enqueue(big, "backup", 0);
            a.enqueue(file("small", 100), "backup", -1);
            RuntimeException boom = new IllegalStateException("boom from the listener");
            AtomicInteger calls = new AtomicInteger();
            RuntimeException thrown = assertThrows(RuntimeException.class, () -> a.runOnce(60_000, (i, s, t) -> {
                calls.incrementAndGet();
                throw boom;
            }));
            assertSame(boom, thrown);
            assertEquals(1, calls.get(), "no more callbacks after the throw");
            QueueStats s = a.stats();
            assertEquals(0, s.getDone(), s.toString());
            assertEquals(2, s.getPending(), "the interrupted item went back to the queue: " + s);

            RunReport r = a.runOnce(60_000, null);
            assertEquals(2, r.getUploaded(), r.toString());
            assertEquals(RunReport.StopReason.DRAINED, r.getStopped());
        }
    }

    @Test
    void cancelFromAnotherThreadStopsARunMidUpload() throws Exception {
        DevServer d = devServer();
        try (SyncAgent a = openDev(d)) {
            a.enqueue(sparseFile("huge", 64L * 1024 * 1024), "backup", 0);
            CountDownLatch first = new CountDownLatch(1);
            Future<RunReport> run = pool.submit(() -> a.runOnce(120_000, (i, s, t) -> {
                first.countDown();
                try {
                    Thread.sleep(20); // slow the upload down so the cancel lands mid-file
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));
            assertTrue(first.await(60, TimeUnit.SECONDS), "upload started");
            long t0 = System.nanoTime();
            a.cancel();
            RunReport r = run.get(60, TimeUnit.SECONDS);
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertEquals(RunReport.StopReason.CANCELLED, r.getStopped(), r.toString());
            assertEquals(0, r.getUploaded());
            assertTrue(ms < 10_000, "cancel took " + ms + " ms");
            QueueStats s = a.stats();
            assertEquals(1, s.getPending(), s.toString());
            // The next run resumes and finishes it.
            RunReport again = a.runOnce(120_000, null);
            assertEquals(1, again.getUploaded(), again.toString());
            s = a.stats();
            assertEquals(0, s.getQueued(), s.toString());
            assertEquals(1, s.getDone(), s.toString());
        }
    }

    /** Bytes a dev-server region has stored so far (all its upload files). */
    private static long storedBytes(DevServer d, String region) throws IOException {
        Path store = d.dir.resolve(region);
        if (!Files.isDirectory(store)) {
            return 0;
        }
        long sum = 0;
        try (java.util.stream.Stream<Path> files = Files.list(store)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                if (Files.isRegularFile(p)) {
                    sum += Files.size(p);
                }
            }
        }
        return sum;
    }

    /**
     * Two agents on one database: B moves the account to SG while A's run is sending bytes to IN.
     * The dev server's byte counters live in its own process and are not reachable from Java;
     * the bytes are checked on the progress callbacks, the audit trail, the queue counters, and
     * the upload files the server writes under its directory (as a server-side cross-check).
     */
    @Test
    void twoAgentsOneDatabase_runStopsWhenOtherAgentMovesAccount() throws Exception {
        DevServer d = devServer();
        final int n = 4;
        final long size = 8L * 1024 * 1024;
        final long mib = 1024 * 1024;
        try (SyncAgent a = openDev(d); SyncAgent b = SyncAgent.openForTest(dbPath(), d.root, d.caPem)) {
            assertEquals("in", b.approvedRegion());
            String[] paths = new String[n];
            for (int i = 0; i < n; i++) {
                paths[i] = sparseFile("big-" + i, size);
            }
            long[] ids = a.enqueueAll(paths, "backup", 0);
            assertEquals(n, b.stats().getPending());

            CountDownLatch bytesOut = new CountDownLatch(1);
            AtomicBoolean moved = new AtomicBoolean();
            AtomicInteger before = new AtomicInteger();
            List<String> late = Collections.synchronizedList(new ArrayList<>());
            Future<RunReport> run = pool.submit(() -> a.runOnce(120_000, (item, sent, total) -> {
                if (moved.get()) {
                    late.add(item + ":" + sent + "/" + total);
                } else {
                    before.incrementAndGet();
                }
                if (sent >= 2 * mib) {
                    bytesOut.countDown();
                }
                try {
                    Thread.sleep(30); // a slow run: the move lands mid-file
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));
            assertTrue(bytesOut.await(60, TimeUnit.SECONDS), "bytes went out to IN");
            assertFalse(run.isDone(), "the run is still sending");

            b.setAccountCountry("SG");
            moved.set(true);
            long storedAtMove = storedBytes(d, "in");
            // Held at once, before A's run even noticed.
            QueueStats sb = b.stats();
            assertEquals(0, sb.getPending() + sb.getFailed(), "nothing left to send to IN: " + sb);

            RunReport r = run.get(60, TimeUnit.SECONDS);
            long storedAfter = storedBytes(d, "in");
            assertEquals(RunReport.StopReason.REGION_CHANGED, r.getStopped(), r.toString());
            assertEquals("in", r.getRegion());
            assertTrue(before.get() >= 2, "progress before the move: " + before.get());
            // The buffer in flight may still report, and a file that just completed its last
            // chunk reports once more; nothing beyond that.
            assertTrue(late.size() <= 2, "progress after the move: " + late);
            assertTrue(storedAfter - storedAtMove <= 2 * mib,
                    "IN stored " + (storedAfter - storedAtMove) + " bytes after the move");

            assertTrue(r.getUploaded() < n, r.toString());
            long held = n - r.getUploaded();
            List<AuditRecord> recs = a.audit(0, 100);
            assertEquals(r.getUploaded(), recs.size(), recs.toString());
            for (AuditRecord rec : recs) {
                assertEquals("in", rec.getRegion(), rec.toString());
                assertEquals(size, rec.getBytes(), rec.toString());
                assertTrue(rec.getSentBytes() >= size, rec.toString());
            }
            for (SyncAgent x : new SyncAgent[] {a, b}) {
                QueueStats s = x.stats();
                assertEquals(held, s.getHeld(), "the rest is held: " + s);
                assertEquals(0, s.getPending(), s.toString());
                assertEquals(0, s.getUploading(), s.toString());
                assertEquals(0, s.getFailed(), s.toString());
                assertEquals(r.getUploaded(), s.getDone(), s.toString());
            }
            assertEquals("sg", a.approvedRegion());
            assertEquals("SG", a.configInfo().getCountry());

            // Back to IN: the held items are pending again and the next run finishes them.
            b.setAccountCountry("IN");
            assertEquals(held, a.stats().getPending());
            RunReport again = a.runOnce(120_000, null);
            assertEquals(RunReport.StopReason.DRAINED, again.getStopped(), again.toString());
            assertEquals(held, again.getUploaded(), again.toString());
            QueueStats s = b.stats();
            assertEquals(0, s.getQueued(), s.toString());
            assertEquals(n, s.getDone(), s.toString());
            Set<Long> audited = new HashSet<>();
            for (AuditRecord rec : a.audit(0, 100)) {
                assertEquals("in", rec.getRegion(), rec.toString());
                audited.add(rec.getItemId());
            }
            Set<Long> all = new HashSet<>();
            for (long id : ids) {
                all.add(id);
            }
            assertEquals(all, audited);
        }
    }
}

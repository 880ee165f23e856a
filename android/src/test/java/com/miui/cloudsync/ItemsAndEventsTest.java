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
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The queue seen and acted on item by item, and a run's events (issue 14): {@link
 * SyncAgent#getItem}, {@link SyncAgent#listItemsIn}, {@link SyncAgent#retryDead}, {@link
 * SyncAgent#remove}, {@link SyncAgent#version}, {@link RunListener} and the next due time of
 * {@link RunReport} and {@link QueueStats}. Uploads go to an anonymous tus server over loopback
 * TLS in a {@code cloudsync dev-server --admin} child process ({@link TestServer}, as in {@link
 * CredentialsTest}), which can fail the next request with a given status; the last test uses
 * {@code cloudsync dev-server}'s own files (the one {@code scripts/test-jvm.sh} starts). Runs under {@code java -Xcheck:jni}.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
// Also checks that the string getters deprecated by issue 24 still return what they did.
@SuppressWarnings("deprecation")
class ItemsAndEventsTest {
    private static final TestEnvelopes.Key ROOT_KEY = new TestEnvelopes.Key();
    private static final TestEnvelopes.Key CONFIG_KEY = new TestEnvelopes.Key();
    private static final byte[] ROOT = TestEnvelopes.root(ROOT_KEY, CONFIG_KEY);
    private static final long MIB = 1024 * 1024;

    @TempDir Path dir;

    private static TestServer.DevServer devServer;

    private TestServer server;

    @BeforeAll
    static void launchDevServer() throws Exception {
        devServer = TestServer.DevServer.launch(ItemsAndEventsTest.class);
    }

    @AfterAll
    static void stopDevServer() throws Exception {
        if (devServer != null) {
            devServer.close();
        }
    }

    @BeforeEach
    void startServer() {
        server = devServer.server(null);
    }

    @AfterEach
    void stopServer() {
        server.close();
    }

    /** An agent on a config whose backup service (region {@code lo}) is the test server, signed in as Alice in IN. */
    private SyncAgent open() throws SyncException {
        SyncAgent a = SyncAgent.openForTest(dir.resolve("cloudsync.db").toString(), ROOT, server.caPem);
        a.installConfig(TestEnvelopes.loopbackConfig(CONFIG_KEY, 1, server.port));
        a.setAccount("alice-1001", "IN");
        return a;
    }

    private String file(String name, int size) throws IOException {
        byte[] b = new byte[size];
        new Random(name.hashCode()).nextBytes(b);
        Path p = dir.resolve(name);
        Files.write(p, b);
        return p.toAbsolutePath().toString();
    }

    private String sparseFile(String name, long size) throws IOException {
        Path p = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        return p.toAbsolutePath().toString();
    }

    /** Every event of a run as text ("started 1 1000", "progress 1 1000 1000", ...), on one thread. */
    static class Recorder implements RunListener {
        final List<String> events = Collections.synchronizedList(new ArrayList<>());
        final Thread caller = Thread.currentThread();
        volatile boolean otherThread;

        private void add(String e) {
            otherThread |= Thread.currentThread() != caller;
            events.add(e);
        }

        @Override
        public void onItemStarted(long itemId, long size) {
            add("started " + itemId + " " + size);
        }

        @Override
        public void onProgress(long itemId, long sent, long total) {
            assertTrue(sent <= total, sent + " > " + total);
            add("progress " + itemId + " " + sent + " " + total);
        }

        @Override
        public void onItemDone(long itemId, long bytes) {
            add("done " + itemId + " " + bytes);
        }

        @Override
        public void onItemFailed(long itemId, String kind, boolean dead, long nextAttemptAtMillis) {
            add("failed " + itemId + " " + kind + " " + dead + " " + nextAttemptAtMillis);
        }

        @Override
        public void onItemHeld(long itemId) {
            add("held " + itemId);
        }

        /** The events other than progress. */
        List<String> items() {
            List<String> out = new ArrayList<>();
            for (String e : events) {
                if (!e.startsWith("progress ")) {
                    out.add(e);
                }
            }
            return out;
        }

        /** The progress {@code sent} values of {@code id}, in order. */
        List<Long> sent(long id) {
            List<Long> out = new ArrayList<>();
            for (String e : events) {
                String[] f = e.split(" ");
                if (f[0].equals("progress") && Long.parseLong(f[1]) == id) {
                    out.add(Long.parseLong(f[2]));
                }
            }
            return out;
        }
    }

    private static void assertCompletedOnce(List<Long> sent, long total) {
        assertFalse(sent.isEmpty(), "progress reported");
        for (int i = 1; i < sent.size(); i++) {
            assertTrue(sent.get(i - 1) < sent.get(i), "progress only grows: " + sent);
        }
        assertEquals(total, (long) sent.get(sent.size() - 1), sent.toString());
        assertEquals(1, Collections.frequency(sent, total), "completion reported once: " + sent);
    }

    @Test
    void version() throws IOException {
        Path cargo = Paths.get("Cargo.toml");
        if (!Files.exists(cargo)) {
            cargo = Paths.get("../Cargo.toml"); // Gradle runs tests in android/
        }
        Matcher m = Pattern.compile("(?m)^version\\s*=\\s*\"([^\"]+)\"")
                .matcher(new String(Files.readAllBytes(cargo), StandardCharsets.UTF_8));
        assertTrue(m.find());
        assertEquals(m.group(1), SyncAgent.version());
    }

    @Test
    void stopReasonsTheJavaApiDoesNotKnowAreUnknown() {
        assertEquals(RunReport.StopReason.DRAINED, RunReport.StopReason.fromNative("drained"));
        assertEquals(RunReport.StopReason.TIME_UP, RunReport.StopReason.fromNative("time_up"));
        assertEquals(RunReport.StopReason.CANCELLED, RunReport.StopReason.fromNative("cancelled"));
        assertEquals(RunReport.StopReason.REGION_CHANGED, RunReport.StopReason.fromNative("region_changed"));
        assertEquals(RunReport.StopReason.ACCOUNT_CHANGED, RunReport.StopReason.fromNative("account_changed"));
        assertEquals(RunReport.StopReason.UNKNOWN, RunReport.StopReason.fromNative("thermal_throttled"));
        assertEquals(RunReport.StopReason.UNKNOWN, RunReport.StopReason.fromNative(""));
        assertEquals(RunReport.StopReason.UNKNOWN, RunReport.StopReason.fromNative(null));
        RunReport r = new RunReport("in", 0, 0, 0, 0, 0, 0, "from_the_future", -1);
        assertEquals(RunReport.StopReason.UNKNOWN, r.getStopped());
        assertEquals(-1, r.getNextDueAt());
    }

    @Test
    void enqueueForAServiceTheConfigDoesNotOfferIsInvalidArgument() throws Exception {
        String f = file("a", 10);
        try (SyncAgent a = open()) {
            SyncException e = assertThrows(SyncException.class, () -> a.enqueue(f, "photos", 0));
            assertEquals(SyncException.class, e.getClass());
            assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind());
            assertEquals(62, e.getCode());
            e = assertThrows(SyncException.class, () -> a.enqueueAll(new String[] {f}, "photos", 0));
            assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind());
            assertTrue(a.listItemsIn(null, 0, 10).isEmpty(), "nothing queued");
            a.enqueue(f, "backup", 0);
        }
        // Without a config nothing is known yet: accepted.
        try (SyncAgent fresh = SyncAgent.open(dir.resolve("fresh.db").toString(), ROOT)) {
            long id = fresh.enqueue(f, "photos", 0);
            ItemInfo it = fresh.getItem(id);
            assertNotNull(it);
            assertEquals("photos", it.getService());
        }
    }

    @Test
    void listItemsPagesByIdThroughEveryItemOnce() throws Exception {
        try (SyncAgent a = open()) {
            String[] paths = new String[7];
            for (int i = 0; i < paths.length; i++) {
                paths[i] = file("p" + i, 10 + i);
            }
            long[] ids = a.enqueueAll(paths, "backup", 0);
            assertTrue(a.remove(ids[3]), "a gap in the ids");
            List<Long> seen = new ArrayList<>();
            long after = 0;
            int pages = 0;
            while (true) {
                List<ItemInfo> page = a.listItemsIn(ItemState.PENDING, after, 2);
                pages++;
                for (ItemInfo it : page) {
                    seen.add(it.getId());
                }
                if (page.size() < 2) {
                    break;
                }
                after = page.get(page.size() - 1).getId();
            }
            assertEquals(Arrays.asList(ids[0], ids[1], ids[2], ids[4], ids[5], ids[6]), seen);
            assertEquals(4, pages, "three full pages and an empty one");
            assertEquals(ids[4], a.listItemsIn(null, ids[3], 1).get(0).getId(), "a removed id still pages");
            assertTrue(a.listItemsIn(null, Long.MAX_VALUE, 10).isEmpty());
            SyncException e = assertThrows(SyncException.class, () -> a.listItemsIn(null, -1, 10));
            assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind());
            assertEquals("invalid argument: after_id is negative", e.getMessage());
            e = assertThrows(SyncException.class, () -> a.audit(-1, 10));
            assertEquals("invalid argument: after_id is negative", e.getMessage());
        }
    }

    @Test
    void itemsListedAndReadBeforeAndAfterAFailedAttempt() throws Exception {
        try (SyncAgent a = open()) {
            assertNull(a.getItem(1), "nothing queued yet");
            assertTrue(a.listItemsIn(null, 0, 10).isEmpty());
            assertEquals(-1, a.stats().getNextDueAt(), "nothing waits");
            String pa = file("a", 1000);
            String pb = file("b", 2000);
            long t0 = System.currentTimeMillis();
            long ia = a.enqueue(pa, "backup", 5);
            long ib = a.enqueue(pb, "backup", -3);

            List<ItemInfo> all = a.listItemsIn(null, 0, 10);
            assertEquals(2, all.size(), all.toString());
            assertEquals(ia, all.get(0).getId(), "by id");
            assertThrows(UnsupportedOperationException.class, () -> all.remove(0));
            assertEquals(1, a.listItemsIn(null, 0, 1).size(), "limit");
            assertEquals(0, a.listItemsIn(null, 0, 0).size());
            assertEquals(2, a.listItemsIn(ItemState.PENDING, 0, 10).size());
            assertTrue(a.listItemsIn(ItemState.FAILED, 0, 10).isEmpty());
            assertTrue(a.listItemsIn(ItemState.DONE, 0, 10).isEmpty(), "done items are in the audit");
            // Every state but UNKNOWN is a native name (the native side refuses an unknown one).
            for (ItemState st : ItemState.values()) {
                if (st != ItemState.UNKNOWN) {
                    assertEquals(st == ItemState.PENDING ? 2 : 0, a.listItemsIn(st, 0, 10).size(), st.name());
                }
            }
            IllegalArgumentException u = assertThrows(IllegalArgumentException.class,
                    () -> a.listItemsIn(ItemState.UNKNOWN, 0, 10));
            assertTrue(u.getMessage().contains("UNKNOWN"), u.getMessage());
            // The deprecated text form still works as before.
            assertEquals(2, a.listItems(ItemInfo.STATE_PENDING, 0, 10).size());
            assertEquals(2, a.listItems(null, 0, 10).size());
            assertTrue(a.listItems("done", 0, 10).isEmpty());
            SyncException e = assertThrows(SyncException.class, () -> a.listItems("finished", 0, 10));
            assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind());

            ItemInfo it = a.getItem(ia);
            assertNotNull(it);
            assertEquals(ia, it.getId());
            assertEquals(pa, it.getPath());
            assertEquals("backup", it.getService());
            assertEquals(5, it.getPriority());
            assertEquals(1000, it.getSize());
            assertEquals(ItemInfo.STATE_PENDING, it.getState());
            assertEquals(0, it.getAttempts());
            assertEquals(0, it.getConfirmedOffset());
            assertTrue(it.getNextAttemptAt() <= System.currentTimeMillis(), "due at once: " + it);
            assertTrue(it.getNextAttemptAt() >= t0 - 1000, it.toString());
            assertNull(it.getLastErrorKind());
            assertNull(it.getLastErrorMessage());
            assertNull(it.getHeldReason());
            String account = it.getAccount();
            assertNotNull(account, "stamped with the signed-in account");
            assertTrue(account.matches("[0-9a-f]{16}"), account);
            assertFalse(account.contains("alice"));
            assertEquals(account, a.getItem(ib).getAccount(), "one stamp per account");
            assertFalse(it.toString().contains(pa), "toString() leaves the path out: " + it);
            QueueStats s = a.stats();
            assertTrue(s.getNextDueAt() >= 0 && s.getNextDueAt() <= System.currentTimeMillis(), s.toString());

            // The first request of the first item (a, priority 5) fails with a 500.
            server.fail("POST", 500);
            Recorder rec = new Recorder();
            long before = System.currentTimeMillis();
            RunReport r = a.runOnce(60_000, rec);
            assertFalse(rec.otherThread, "events arrive on the calling thread");
            assertEquals(1, r.getUploaded(), r.toString());
            assertEquals(1, r.getFailed(), r.toString());
            assertEquals(0, r.getDead(), r.toString());
            assertEquals(1, r.getRemaining(), r.toString());
            assertEquals(RunReport.StopReason.DRAINED, r.getStopped(), "one attempt per item and run");

            ItemInfo failed = a.getItem(ia);
            assertNotNull(failed);
            assertEquals(ItemInfo.STATE_FAILED, failed.getState(), failed.toString());
            assertEquals(1, failed.getAttempts());
            assertEquals("lo", failed.getRegion());
            assertEquals(SyncException.KIND_NETWORK, failed.getLastErrorKind());
            assertEquals("POST: HTTP 500", failed.getLastErrorMessage());
            long next = failed.getNextAttemptAt();
            assertTrue(next >= before, next + " < " + before);
            assertEquals(next, r.getNextDueAt(), "the run says when the failed item is due");
            assertEquals(next, a.stats().getNextDueAt());
            assertEquals(failed.toString(), a.listItemsIn(ItemState.FAILED, 0, 10).get(0).toString());
            assertNull(a.getItem(ib), "b was uploaded: no longer queued");
            assertEquals(ib, a.audit(0, 10).get(0).getItemId());

            assertEquals(
                    Arrays.asList(
                            "started " + ia + " 1000",
                            "failed " + ia + " network false " + next,
                            "started " + ib + " 2000",
                            "done " + ib + " 2000"),
                    rec.items());
            assertCompletedOnce(rec.sent(ib), 2000);

            // Once due, the next run uploads it; then nothing waits.
            long wait = next - System.currentTimeMillis();
            if (wait > 0) {
                Thread.sleep(wait + 50);
            }
            r = a.runOnce(60_000, (RunListener) null);
            assertEquals(1, r.getUploaded(), r.toString());
            assertEquals(-1, r.getNextDueAt(), r.toString());
            assertEquals(-1, a.stats().getNextDueAt());
            assertNull(a.getItem(ia));
            assertTrue(a.listItemsIn(null, 0, 10).isEmpty());
        }
    }

    @Test
    void aRejectedItemIsDeadThenRetryDeadRevivesItAndRemoveDeletesIt() throws Exception {
        try (SyncAgent a = open()) {
            long id = a.enqueue(file("a", 500), "backup", 0);
            server.fail("POST", 400);
            Recorder rec = new Recorder();
            RunReport r = a.runOnce(60_000, rec);
            assertEquals(1, r.getDead(), r.toString());
            assertEquals(0, r.getRemaining(), r.toString());
            assertEquals(-1, r.getNextDueAt(), "a dead item waits for the app, not for time");
            assertEquals(Collections.singletonList("failed " + id + " rejected true -1"),
                    rec.items().subList(1, rec.items().size()));

            ItemInfo dead = a.getItem(id);
            assertNotNull(dead);
            assertEquals(ItemInfo.STATE_DEAD, dead.getState());
            assertEquals(SyncException.KIND_REJECTED, dead.getLastErrorKind());
            assertNotNull(dead.getLastErrorMessage());
            assertTrue(dead.getLastErrorMessage().contains("400"), dead.toString());
            assertEquals(1, a.listItemsIn(ItemState.DEAD, 0, 10).size());
            assertEquals(1, a.stats().getDead());
            assertEquals(-1, a.stats().getNextDueAt());

            assertEquals(1, a.retryDead());
            ItemInfo revived = a.getItem(id);
            assertNotNull(revived);
            assertEquals(ItemInfo.STATE_PENDING, revived.getState(), revived.toString());
            assertEquals(0, revived.getAttempts());
            assertEquals(0, a.retryDead(), "nothing dead any more");

            assertTrue(a.remove(id));
            assertNull(a.getItem(id));
            assertFalse(a.remove(id), "no longer queued");
            assertFalse(a.remove(424242));
            assertEquals(0, a.stats().getQueued());
            r = a.runOnce(60_000, (RunListener) null);
            assertEquals(0, r.getUploaded(), r.toString());
        }
    }

    @Test
    void eventsInOrderAndEachCompletionOnceForBothListeners() throws Exception {
        try (SyncAgent a = open()) {
            long big = a.enqueue(sparseFile("big", 3 * MIB + 5), "backup", 1);
            long small = a.enqueue(file("small", 10_000), "backup", 0);
            Recorder rec = new Recorder();
            RunReport r = a.runOnce(60_000, rec);
            assertEquals(2, r.getUploaded(), r.toString());
            assertEquals(-1, r.getNextDueAt(), r.toString());
            assertEquals(
                    Arrays.asList(
                            "started " + big + " " + (3 * MIB + 5),
                            "done " + big + " " + (3 * MIB + 5),
                            "started " + small + " 10000",
                            "done " + small + " 10000"),
                    rec.items());
            assertTrue(rec.sent(big).size() >= 2, "progress along the way: " + rec.events);
            assertCompletedOnce(rec.sent(big), 3 * MIB + 5);
            assertCompletedOnce(rec.sent(small), 10_000);
            // Progress sits between its item's start and end.
            int start = rec.events.indexOf("started " + big + " " + (3 * MIB + 5));
            int end = rec.events.indexOf("done " + big + " " + (3 * MIB + 5));
            for (int i = 0; i < rec.events.size(); i++) {
                if (rec.events.get(i).startsWith("progress " + big + " ")) {
                    assertTrue(start < i && i < end, rec.events.toString());
                }
            }

            // The progress-only overload: the same progress, each completion once.
            long big2 = a.enqueue(sparseFile("big2", 2 * MIB + 1), "backup", 0);
            List<Long> sent = new ArrayList<>();
            r = a.runOnce(60_000, (item, s, total) -> {
                assertEquals(big2, item);
                sent.add(s);
            });
            assertEquals(1, r.getUploaded(), r.toString());
            assertCompletedOnce(sent, 2 * MIB + 1);
        }
    }

    @Test
    void anItemHeldInFlightIsReportedHeld() throws Exception {
        try (SyncAgent a = open()) {
            long id = a.enqueue(sparseFile("huge", 32 * MIB), "backup", 0);
            Recorder rec = new Recorder() {
                boolean moved;

                @Override
                public void onProgress(long itemId, long sent, long total) {
                    super.onProgress(itemId, sent, total);
                    if (!moved) {
                        moved = true;
                        try {
                            a.setAccount("bob-2002", null); // from the listener: allowed
                        } catch (SyncException e) {
                            throw new IllegalStateException(e);
                        }
                    }
                }
            };
            RunReport r = a.runOnce(60_000, rec);
            assertEquals(RunReport.StopReason.ACCOUNT_CHANGED, r.getStopped(), r.toString());
            assertEquals(Collections.singletonList("held " + id),
                    rec.items().subList(1, rec.items().size()), rec.items().toString());
            ItemInfo it = a.getItem(id);
            assertNotNull(it);
            assertEquals(ItemInfo.STATE_HELD, it.getState(), it.toString());
            assertEquals(ItemInfo.HELD_ACCOUNT, it.getHeldReason());
            assertEquals(1, a.listItemsIn(ItemState.HELD, 0, 10).size());
            assertEquals(-1, a.stats().getNextDueAt(), "held items wait for their account, not for time");
        }
    }

    @Test
    void aThrowingRunListenerCancelsTheRunAndIsRethrown() throws Exception {
        try (SyncAgent a = open()) {
            long first = a.enqueue(file("a", 1000), "backup", 1);
            a.enqueue(file("b", 1000), "backup", 0);
            RuntimeException boom = new IllegalStateException("boom from onItemStarted");
            List<Long> started = new ArrayList<>();
            RuntimeException thrown = assertThrows(RuntimeException.class, () -> a.runOnce(60_000, new RunListener() {
                @Override
                public void onItemStarted(long itemId, long size) {
                    started.add(itemId);
                    throw boom;
                }

                @Override
                public void onItemDone(long itemId, long bytes) {
                    throw new AssertionError("no call after the throw");
                }
            }));
            assertSame(boom, thrown);
            assertEquals(Collections.singletonList(first), started);
            QueueStats s = a.stats();
            assertEquals(2, s.getPending(), "both items back in the queue: " + s);
            assertEquals(0, s.getDone(), s.toString());
            RunReport r = a.runOnce(60_000, new RunListener() {});
            assertEquals(2, r.getUploaded(), r.toString());
        }
    }

    // ------------------------------------------------------------ the dev server, public API only

    /**
     * The config {@code cloudsync dev-server} writes carries its CA in each region's {@code
     * ca_certs} (issue 14, item 4), so plain {@link SyncAgent#open} uploads to it: no test CA, no
     * {@code openForTest}.
     */
    @Test
    void theDevServersOwnFilesAreEnoughToUpload() throws Exception {
        String ready = System.getenv("CLOUDSYNC_DEVSERVER_READY");
        Assumptions.assumeTrue(ready != null && !ready.isEmpty(),
                "CLOUDSYNC_DEVSERVER_READY not set (scripts/test-jvm.sh starts cloudsync dev-server)");
        SyncAgentTest.DevServer d = new SyncAgentTest.DevServer(
                new String(Files.readAllBytes(Paths.get(ready)), StandardCharsets.UTF_8));
        assertTrue(configCarriesCa(d.config), "the dev server's config.json carries its CA");
        try (SyncAgent a = SyncAgent.open(dir.resolve("plain.db").toString(), d.root)) {
            a.installConfig(d.config);
            a.setAccountCountry("IN");
            assertEquals("in", a.approvedRegion());
            long id = a.enqueue(file("via-public-api", 4096), "backup", 0);
            RunReport r = a.runOnce(60_000, (RunListener) null);
            assertEquals(1, r.getUploaded(), r + " / " + a.getItem(id));
            assertEquals(0, r.getFailed(), r.toString());
            assertEquals("in", a.audit(0, 10).get(0).getRegion());
        }
    }

    /** Whether the config envelope's payload lists a PEM certificate in some {@code ca_certs}. */
    private static boolean configCarriesCa(byte[] envelope) {
        Matcher m = Pattern.compile("\"payload\"\\s*:\\s*\"([^\"]+)\"")
                .matcher(new String(envelope, StandardCharsets.UTF_8));
        assertTrue(m.find(), "a DSSE envelope");
        String payload = new String(Base64.getDecoder().decode(m.group(1)), StandardCharsets.UTF_8);
        return Pattern.compile("\"ca_certs\"\\s*:\\s*\\[\\s*\"-----BEGIN CERTIFICATE").matcher(payload).find();
    }
}

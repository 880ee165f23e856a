package com.miui.cloudsync;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.ref.WeakReference;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Java side of credentials (issue 12): {@link CredentialProvider} through JNI against a real
 * tus server over loopback TLS that requires a bearer token. The server runs in a {@code
 * cloudsync dev-server --admin} child process ({@link TestServer}), so a test can rotate its token,
 * force a 401 and read every {@code Authorization} header it received over the dev server's admin
 * channel. Runs under {@code java -Xcheck:jni}.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class CredentialsTest {
    private static final TestEnvelopes.Key ROOT_KEY = new TestEnvelopes.Key();
    private static final TestEnvelopes.Key CONFIG_KEY = new TestEnvelopes.Key();
    private static final byte[] ROOT = TestEnvelopes.root(ROOT_KEY, CONFIG_KEY);
    private static final String ALICE = "alice-1001";
    private static final String BOB = "bob-2002";

    @TempDir Path dir;

    private static TestServer.DevServer devServer;

    private final ExecutorService pool = Executors.newCachedThreadPool();
    private TestServer server;

    @BeforeAll
    static void launchDevServer() throws Exception {
        devServer = TestServer.DevServer.launch(CredentialsTest.class);
    }

    @AfterAll
    static void stopDevServer() throws Exception {
        if (devServer != null) {
            devServer.close();
        }
    }

    /** One call of a provider, as it saw it. */
    static final class Call {
        final String account;
        final String region;
        final String service;
        final boolean refresh;
        final Thread thread;

        Call(String account, String region, String service, boolean refresh) {
            this.account = account;
            this.region = region;
            this.service = service;
            this.refresh = refresh;
            this.thread = Thread.currentThread();
        }

        @Override
        public String toString() {
            return account + "/" + region + "/" + service + (refresh ? "/refresh" : "");
        }
    }

    /** What a {@link Recorder} answers. */
    interface Answer {
        String token(Call call) throws Exception;
    }

    /** A provider that records every call and answers with {@code answer}. */
    static final class Recorder implements CredentialProvider {
        final List<Call> calls = Collections.synchronizedList(new ArrayList<>());
        volatile Answer answer;

        Recorder(Answer answer) {
            this.answer = answer;
        }

        @Override
        public String getToken(String accountId, String region, String service, boolean refresh)
                throws Exception {
            Call c = new Call(accountId, region, service, refresh);
            calls.add(c);
            return answer.token(c);
        }

        List<Boolean> refreshes() {
            synchronized (calls) {
                List<Boolean> out = new ArrayList<>();
                for (Call c : calls) {
                    out.add(c.refresh);
                }
                return out;
            }
        }
    }

    @BeforeEach
    void startServer() {
        server = devServer.server("tok-1");
    }

    @AfterEach
    void stop() throws Exception {
        pool.shutdownNow();
        assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS), "test threads finished");
        server.close();
    }

    private String file(String name, int size) throws IOException {
        byte[] b = new byte[size];
        new Random(name.hashCode()).nextBytes(b);
        Path p = dir.resolve(name);
        Files.write(p, b);
        return p.toAbsolutePath().toString();
    }

    /** An agent on a config whose backup service is {@code server} and needs a bearer token, signed in as Alice in IN. */
    private SyncAgent open(CredentialProvider provider) throws SyncException {
        SyncAgent a = SyncAgent.openForTest(dir.resolve("cloudsync.db").toString(), ROOT, server.caPem);
        a.installConfig(TestEnvelopes.loopbackConfig(CONFIG_KEY, 1, server.port, "bearer"));
        a.setAccount(ALICE, "IN");
        a.setCredentialProvider(provider);
        return a;
    }

    private static void assertKind(SyncException e, String kind, int code) {
        assertEquals(AuthException.class, e.getClass(), e.toString());
        assertEquals(kind, e.getKind(), e.toString());
        assertEquals(code, e.getCode(), e.toString());
    }

    private static void assertUntouched(SyncAgent a, long pending) throws SyncException {
        QueueStats s = a.stats();
        assertEquals(pending, s.getPending(), "still pending: " + s);
        assertEquals(0, s.getUploading() + s.getFailed() + s.getDead() + s.getDone(), s.toString());
    }

    // ---------------------------------------------------------------- the provider and the server

    @Test
    void theProviderRunsOnTheRunOnceThreadAndTheServerSeesItsToken() throws Exception {
        Recorder p = new Recorder(c -> "tok-1");
        try (SyncAgent a = open(p)) {
            a.enqueueAll(new String[] {file("a", 1000), file("b", 70_000)}, "backup", 0);
            AtomicReference<Thread> runner = new AtomicReference<>();
            RunReport r = pool.submit(() -> {
                runner.set(Thread.currentThread());
                return a.runOnce(30_000, null);
            }).get(30, TimeUnit.SECONDS);
            assertEquals(RunReport.StopReason.DRAINED, r.getStopped(), r.toString());
            assertEquals(2, r.getUploaded(), r.toString());

            assertEquals(1, p.calls.size(), "asked once per run and service: " + p.calls);
            Call c = p.calls.get(0);
            assertSame(runner.get(), c.thread, "called on the runOnce thread");
            assertEquals(ALICE, c.account);
            assertEquals("lo", c.region);
            assertEquals("backup", c.service);
            assertFalse(c.refresh);

            List<String> seen = server.authorizations();
            assertTrue(seen.size() >= 4, "POST and PATCH of both items: " + seen);
            for (String h : seen) {
                assertEquals("Bearer tok-1", h);
            }
            assertEquals(0, server.unauthorized());
            assertEquals(2, server.uploadsCompleted());
            assertEquals(2, a.stats().getDone());

            // The token lives for one run: the next run asks again.
            a.enqueue(file("c", 10), "backup", 0);
            assertEquals(1, a.runOnce(30_000, null).getUploaded());
            assertEquals(2, p.calls.size(), p.calls.toString());
            assertFalse(p.calls.get(1).refresh);
        }
    }

    @Test
    void aRotatedTokenIsRefreshedOnceAndTheRunSucceeds() throws Exception {
        AtomicReference<String> cached = new AtomicReference<>("tok-1");
        Recorder p = new Recorder(c -> {
            if (c.refresh) {
                cached.set("tok-2"); // the account service hands out the new one
            }
            return cached.get();
        });
        try (SyncAgent a = open(p)) {
            a.enqueue(file("a", 100), "backup", 0);
            assertEquals(1, a.runOnce(30_000, null).getUploaded());
            assertEquals(Collections.singletonList(false), p.refreshes());

            server.setToken("tok-2");
            int before = server.authorizations().size();
            a.enqueue(file("b", 100), "backup", 0);
            RunReport r = a.runOnce(30_000, null);
            assertEquals(RunReport.StopReason.DRAINED, r.getStopped(), r.toString());
            assertEquals(1, r.getUploaded(), r.toString());
            assertEquals(Arrays.asList(false, false, true), p.refreshes(), p.calls.toString());
            List<String> seen = server.authorizations();
            List<String> run2 = seen.subList(before, seen.size());
            assertEquals("Bearer tok-1", run2.get(0), run2.toString());
            for (String h : run2.subList(1, run2.size())) {
                assertEquals("Bearer tok-2", h, run2.toString());
            }
            assertEquals(1, server.unauthorized());
            assertEquals(2, a.stats().getDone());
        }
    }

    @Test
    void aForced401Or403AsksForARefreshedToken() throws Exception {
        Recorder p = new Recorder(c -> "tok-1");
        try (SyncAgent a = open(p)) {
            a.enqueue(file("a", 100), "backup", 0);
            server.fail("POST", 401);
            RunReport r = a.runOnce(30_000, null);
            assertEquals(1, r.getUploaded(), r.toString());
            assertEquals(Arrays.asList(false, true), p.refreshes(), p.calls.toString());

            p.calls.clear();
            a.enqueue(file("b", 100), "backup", 0);
            server.fail("PATCH", 403);
            r = a.runOnce(30_000, null);
            assertEquals(1, r.getUploaded(), r.toString());
            assertEquals(Arrays.asList(false, true), p.refreshes(), p.calls.toString());
            assertEquals(2, a.stats().getDone());
            assertEquals(0, a.stats().getFailed());
        }
    }

    @Test
    void aTokenRefusedAfterTheRefreshIsUnauthorizedAndItemsAreUntouched() throws Exception {
        Recorder p = new Recorder(c -> "wrong-token");
        try (SyncAgent a = open(p)) {
            a.enqueueAll(new String[] {file("a", 100), file("b", 200)}, "backup", 0);
            AuthException e = assertThrows(AuthException.class, () -> a.runOnce(30_000, null));
            assertKind(e, SyncException.KIND_UNAUTHORIZED, 53);
            assertFalse(e.getMessage().contains("wrong-token"), e.getMessage());
            assertEquals(Arrays.asList(false, true), p.refreshes(), "one refresh, then stop");
            assertUntouched(a, 2);
            assertEquals(Arrays.asList("Bearer wrong-token", "Bearer wrong-token"), server.authorizations());
            assertEquals(2, server.unauthorized());
            assertEquals(0, server.uploadsCreated());

            // No attempt was counted and no backoff set: with the right token, the next run
            // uploads both at once.
            p.answer = c -> "tok-1";
            RunReport r = a.runOnce(30_000, null);
            assertEquals(2, r.getUploaded(), r.toString());
            assertEquals(0, r.getFailed(), r.toString());
        }
    }

    @Test
    void aThrowingProviderIsUnauthorizedWithItsMessage() throws Exception {
        Recorder p = new Recorder(c -> {
            throw new IOException("account service down");
        });
        try (SyncAgent a = open(p)) {
            a.enqueue(file("a", 100), "backup", 0);
            AuthException e = assertThrows(AuthException.class, () -> a.runOnce(30_000, null));
            assertKind(e, SyncException.KIND_UNAUTHORIZED, 53);
            assertTrue(e.getMessage().contains("account service down"), e.getMessage());
            assertUntouched(a, 1);

            // Without a message: the exception's class name.
            p.answer = c -> {
                throw new IllegalStateException();
            };
            e = assertThrows(AuthException.class, () -> a.runOnce(30_000, null));
            assertKind(e, SyncException.KIND_UNAUTHORIZED, 53);
            assertTrue(e.getMessage().contains("java.lang.IllegalStateException"), e.getMessage());

            // Control characters of the message do not reach the exception.
            p.answer = c -> {
                throw new RuntimeException("line one\nline two");
            };
            e = assertThrows(AuthException.class, () -> a.runOnce(30_000, null));
            assertTrue(e.getMessage().contains("line one line two"), e.getMessage());

            assertEquals(Arrays.asList(false, false, false), p.refreshes());
            assertUntouched(a, 1);
            assertEquals(0, server.authorizationHeaders(), "nothing was sent with a token");
            assertEquals(0, server.unauthorized(), "no request that needs one was sent");
            assertEquals(0, server.uploadsCreated());

            // The JVM and the agent are fine: the next run with a token uploads.
            p.answer = c -> "tok-1";
            assertEquals(1, a.runOnce(30_000, null).getUploaded());
        }
    }

    @Test
    void aTokenWithAnUnpairedSurrogateIsAProviderFailureThatNeverQuotesIt() throws Exception {
        // Decoded strictly, as string arguments are (and as C refuses a token that is not UTF-8):
        // never sent with U+FFFD in it.
        Recorder p = new Recorder(c -> "secret-tok\uD800en");
        try (SyncAgent a = open(p)) {
            a.enqueue(file("a", 100), "backup", 0);
            AuthException e = assertThrows(AuthException.class, () -> a.runOnce(30_000, null));
            assertKind(e, SyncException.KIND_UNAUTHORIZED, 53);
            assertTrue(e.getMessage().contains("getToken returned a token that is not valid UTF-16"), e.getMessage());
            assertFalse(e.getMessage().contains("secret"), e.getMessage());
            assertUntouched(a, 1);
            assertEquals(0, server.authorizationHeaders(), "nothing was sent with the token");
            assertEquals(0, server.uploadsCreated());

            // The next run with a good token uploads.
            p.answer = c -> "tok-1";
            assertEquals(1, a.runOnce(30_000, null).getUploaded());
        }
    }

    @Test
    void aNullTokenOrNoProviderSendsNothing() throws Exception {
        Recorder p = new Recorder(c -> null);
        try (SyncAgent a = open(p)) {
            a.enqueue(file("a", 5000), "backup", 0);
            AuthException e = assertThrows(AuthException.class, () -> a.runOnce(30_000, null));
            assertKind(e, SyncException.KIND_UNAUTHORIZED, 53);
            assertTrue(e.getMessage().contains("no credentials"), e.getMessage());
            assertEquals(Collections.singletonList(false), p.refreshes(), "null is not retried");

            a.setCredentialProvider(null);
            e = assertThrows(AuthException.class, () -> a.runOnce(30_000, null));
            assertKind(e, SyncException.KIND_UNAUTHORIZED, 53);
            assertTrue(e.getMessage().contains("no provider"), e.getMessage());
            assertEquals(1, p.calls.size(), "a removed provider is not called");

            assertUntouched(a, 1);
            // Every request but OPTIONS needs the token and is answered 401 without it: none
            // arrived, so no POST or PATCH was sent (OPTIONS carries no user data).
            assertEquals(0, server.authorizationHeaders());
            assertEquals(0, server.unauthorized());
            assertEquals(0, server.uploadsCreated());
            assertEquals(0, server.bodyBytes());
        }
    }

    // ---------------------------------------------------------------- calling back into the agent

    @Test
    void aProviderMayCallBackIntoTheAgent() throws Exception {
        AtomicReference<SyncAgent> agent = new AtomicReference<>();
        List<Object> seen = Collections.synchronizedList(new ArrayList<>());
        String extra = file("extra", 100);
        Recorder p = new Recorder(c -> {
            SyncAgent a = agent.get();
            seen.add(a.stats());
            seen.add(a.approvedRegion());
            seen.add(a.configInfo().getCountry());
            seen.add(a.enqueue(extra, "backup", 0));
            seen.add(assertThrows(BusyException.class, () -> a.runOnce(1000, null)));
            seen.add(assertThrows(IllegalStateException.class, a::close));
            return "tok-1";
        });
        try (SyncAgent a = open(p)) {
            agent.set(a);
            a.enqueue(file("a", 100), "backup", 0);
            RunReport r = a.runOnce(30_000, null);
            assertEquals(RunReport.StopReason.DRAINED, r.getStopped(), r.toString());
            assertEquals(6, seen.size(), seen.toString());
            assertEquals(1, ((QueueStats) seen.get(0)).getUploading(), "the run holds its item");
            assertEquals("lo", seen.get(1));
            assertEquals("IN", seen.get(2));
            assertTrue((Long) seen.get(3) > 0, "enqueued from the provider");
            assertEquals(SyncException.KIND_BUSY, ((BusyException) seen.get(4)).getKind());
            assertFalse(a.isClosed(), "close() from the provider was refused");
            // The item enqueued meanwhile went in the same run (the token was asked once).
            assertEquals(2, r.getUploaded(), r.toString());
            assertEquals(1, p.calls.size(), p.calls.toString());
            assertEquals(2, a.stats().getDone());
        }
    }

    @Test
    void aSignOutInsideTheProviderStopsTheRunWithNothingLost() throws Exception {
        AtomicReference<SyncAgent> agent = new AtomicReference<>();
        Recorder p = new Recorder(c -> {
            agent.get().setAccount(null, null);
            return "tok-1";
        });
        try (SyncAgent a = open(p)) {
            agent.set(a);
            a.enqueue(file("a", 100), "backup", 0);
            // The token came back after the sign-out: the run stops before the item's bytes.
            RunReport r = a.runOnce(30_000, null);
            assertEquals(RunReport.StopReason.ACCOUNT_CHANGED, r.getStopped(), r.toString());
            assertEquals(0, r.getUploaded(), r.toString());
            assertEquals(1, r.getRemaining(), r.toString());
            // No file bytes went out. (The request the token was asked for, here the POST that
            // creates the upload, is still sent: the core checks the account per buffer, not
            // between the provider's answer and that request.)
            assertEquals(0, server.bodyBytes());
            assertUntouched(a, 1);
            assertEquals(0, server.uploadsCompleted());
            AuthException e = assertThrows(AuthException.class, () -> a.runOnce(30_000, null));
            assertKind(e, SyncException.KIND_NO_ACCOUNT, 22);
        }
    }

    // ---------------------------------------------------------------- accounts

    @Test
    void signOutStopsRunsAndEnqueuesAndKeepsTheQueue() throws Exception {
        Recorder p = new Recorder(c -> "tok-1");
        try (SyncAgent a = open(p)) {
            a.enqueueAll(new String[] {file("a", 100), file("b", 200)}, "backup", 0);
            a.setAccount(null, null);

            AuthException e = assertThrows(AuthException.class, () -> a.runOnce(30_000, null));
            assertKind(e, SyncException.KIND_NO_ACCOUNT, 22);
            String f = file("c", 10);
            e = assertThrows(AuthException.class, () -> a.enqueue(f, "backup", 0));
            assertKind(e, SyncException.KIND_NO_ACCOUNT, 22);
            e = assertThrows(AuthException.class, () -> a.enqueueAll(new String[] {f}, "backup", 0));
            assertKind(e, SyncException.KIND_NO_ACCOUNT, 22);

            assertUntouched(a, 2);
            assertNull(a.approvedRegion(), "a country belongs to an account");
            assertNull(a.configInfo().getCountry());
            assertTrue(p.calls.isEmpty(), "the provider is not asked while signed out");
            assertEquals(0, server.requests(), "nothing was sent");

            // Signing back in (her country comes back) resumes with nothing lost.
            a.setAccount(ALICE, null);
            assertEquals("IN", a.configInfo().getCountry());
            RunReport r = a.runOnce(30_000, null);
            assertEquals(2, r.getUploaded(), r.toString());
        }
    }

    @Test
    void anotherAccountsItemsNeverGoOutWithThisAccountsToken() throws Exception {
        Recorder p = new Recorder(c -> c.account.equals(ALICE) ? "tok-alice" : "tok-bob");
        try (SyncAgent a = open(p)) {
            server.setToken("tok-alice");
            a.enqueueAll(new String[] {file("a1", 100), file("a2", 200)}, "backup", 0);

            a.setAccount(BOB, "IN"); // a new account brings its country (AccountCountryTest)
            QueueStats s = a.stats();
            assertEquals(2, s.getHeld(), "Alice's items are held for Bob: " + s);
            server.setToken("tok-bob");
            a.enqueue(file("b1", 300), "backup", 0);
            RunReport r = a.runOnce(30_000, null);
            assertEquals(1, r.getUploaded(), "only Bob's item: " + r);
            for (Call c : p.calls) {
                assertEquals(BOB, c.account, p.calls.toString());
            }
            int bobRequests = server.authorizations().size();
            for (String h : server.authorizations()) {
                assertEquals("Bearer tok-bob", h);
            }
            assertEquals(1, server.uploadsCreated());

            a.setAccount(ALICE, null);
            s = a.stats();
            assertEquals(2, s.getPending(), "Alice's items are hers again: " + s);
            server.setToken("tok-alice");
            r = a.runOnce(30_000, null);
            assertEquals(2, r.getUploaded(), r.toString());
            List<String> seen = server.authorizations();
            for (String h : seen.subList(bobRequests, seen.size())) {
                assertEquals("Bearer tok-alice", h);
            }
            assertEquals(ALICE, p.calls.get(p.calls.size() - 1).account);
            assertEquals(3, a.stats().getDone());
        }
    }

    @Test
    void setAccountRejectsBadIdsAndCountries() throws Exception {
        try (SyncAgent a = open(null)) {
            SyncException e = assertThrows(SyncException.class, () -> a.setAccount("", null));
            assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind());
            e = assertThrows(SyncException.class, () -> a.setAccount("a\nb", null));
            assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind());
            e = assertThrows(SyncException.class, () -> a.setAccount(ALICE, "IND"));
            assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind());
            assertEquals("IN", a.configInfo().getCountry(), "a refused call changes nothing");
            a.setAccount(BOB, "in");
            assertEquals("IN", a.configInfo().getCountry());
        }
        SyncAgent closed = open(null);
        closed.close();
        assertThrows(IllegalStateException.class, () -> closed.setAccount(ALICE, null));
        assertThrows(IllegalStateException.class, () -> closed.setCredentialProvider(null));
    }

    // ---------------------------------------------------------------- references and R8

    /** Collects garbage until {@code ref} is cleared (or fails after ~10 s). */
    private static void assertCollected(WeakReference<?> ref, String what) throws InterruptedException {
        for (int i = 0; i < 100 && ref.get() != null; i++) {
            System.gc();
            Thread.sleep(100);
        }
        assertNull(ref.get(), what);
    }

    @Test
    void theAgentLetsGoOfTheProvider() throws Exception {
        WeakReference<CredentialProvider> replaced;
        WeakReference<CredentialProvider> atClose;
        try (SyncAgent a = open(null)) {
            CredentialProvider p1 = new Recorder(c -> "tok-1");
            a.setCredentialProvider(p1);
            a.enqueue(file("a", 100), "backup", 0);
            assertEquals(1, a.runOnce(30_000, null).getUploaded());
            replaced = new WeakReference<>(p1);
            p1 = null;
            CredentialProvider p2 = new Recorder(c -> "tok-1");
            a.setCredentialProvider(p2); // replaces p1
            atClose = new WeakReference<>(p2);
            p2 = null;
            assertCollected(replaced, "a replaced provider is released");
            assertNotNull(atClose.get(), "the current provider is kept by the agent");
        }
        assertCollected(atClose, "close() releases the provider");
    }

    @Test
    void consumerRulesKeepTheMethodNativeCodeCalls() throws Exception {
        Method m = CredentialProvider.class.getMethod(
                "getToken", String.class, String.class, String.class, boolean.class);
        assertEquals(String.class, m.getReturnType());
        Path rules = Paths.get("android/consumer-rules.pro");
        if (!Files.exists(rules)) {
            rules = Paths.get("consumer-rules.pro"); // Gradle runs tests in android/
        }
        String text = new String(Files.readAllBytes(rules), StandardCharsets.UTF_8);
        String kept = "java.lang.String getToken(java.lang.String, java.lang.String, java.lang.String, boolean);";
        assertTrue(text.contains("-keep interface com.miui.cloudsync.CredentialProvider {\n    " + kept), text);
        assertTrue(text.contains("class * implements com.miui.cloudsync.CredentialProvider {\n    " + kept), text);
    }
}

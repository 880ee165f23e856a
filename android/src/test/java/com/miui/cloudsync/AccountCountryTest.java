package com.miui.cloudsync;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A country belongs to an account (issue 21): {@link SyncAgent#setAccount} with a {@code null}
 * country gives a new account no country (so no region and no upload), never the previous
 * account's, and gives an account that signs in again its own. Against a tus server in a {@code
 * cloudsync dev-server --admin} child process ({@link TestServer}: loopback TLS, bearer token),
 * whose request count proves that nothing was sent.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AccountCountryTest {
    private static final TestEnvelopes.Key ROOT_KEY = new TestEnvelopes.Key();
    private static final TestEnvelopes.Key CONFIG_KEY = new TestEnvelopes.Key();
    private static final byte[] ROOT = TestEnvelopes.root(ROOT_KEY, CONFIG_KEY);
    private static final String ALICE = "alice-1001";
    private static final String BOB = "bob-2002";

    @TempDir Path dir;

    private static TestServer.DevServer devServer;

    private TestServer server;

    @BeforeAll
    static void launchDevServer() throws Exception {
        devServer = TestServer.DevServer.launch(AccountCountryTest.class);
    }

    @AfterAll
    static void stopDevServer() throws Exception {
        if (devServer != null) {
            devServer.close();
        }
    }

    @BeforeEach
    void startServer() {
        server = devServer.server("tok-alice");
    }

    @AfterEach
    void stop() throws Exception {
        server.close();
    }

    private String file(String name) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, new byte[5_000]);
        return p.toAbsolutePath().toString();
    }

    /** Alice signed in with country IN (region {@code lo}), tokens {@code tok-<first name>}. */
    private SyncAgent open() throws SyncException {
        SyncAgent a = SyncAgent.openForTest(dir.resolve("cloudsync.db").toString(), ROOT, server.caPem);
        a.installConfig(TestEnvelopes.loopbackConfig(CONFIG_KEY, 1, server.port, "bearer"));
        a.setAccount(ALICE, "IN");
        a.setCredentialProvider((account, region, service, refresh) ->
                "tok-" + account.substring(0, account.indexOf('-')));
        return a;
    }

    @Test
    void aNewAccountGetsNoCountryAndUploadsNothing() throws Exception {
        try (SyncAgent a = open()) {
            a.enqueue(file("a1"), "backup", 0);
            a.setAccount(null, null);
            a.setAccount(BOB, null);

            assertNull(a.configInfo().getCountry(), "not Alice's country");
            assertNull(a.configInfo().getApprovedRegion());
            assertNull(a.approvedRegion());
            a.enqueue(file("b1"), "backup", 0);
            ResidencyException e = assertThrows(ResidencyException.class, () -> a.runOnce(30_000, null));
            assertEquals(SyncException.KIND_NO_REGION, e.getKind());
            assertEquals(0, server.requests(), "nothing was sent");
            QueueStats s = a.stats();
            assertEquals(1, s.getPending(), "Bob's item waits: " + s);
            assertEquals(1, s.getHeld(), "Alice's item is held for her: " + s);
            assertEquals(0, s.getDone(), s.toString());

            // Alice again, without a country: hers comes back and her item goes out.
            a.setAccount(ALICE, null);
            assertEquals("IN", a.configInfo().getCountry());
            assertEquals("lo", a.approvedRegion());
            RunReport r = a.runOnce(30_000, null);
            assertEquals(1, r.getUploaded(), r.toString());
            assertEquals(1, r.getHeld(), "Bob's item stays held: " + r);
            for (String h : server.authorizations()) {
                assertEquals("Bearer tok-alice", h);
            }
            // The app's call at every start keeps the country.
            a.setAccount(ALICE, null);
            assertEquals("IN", a.configInfo().getCountry());
        }
    }

    @Test
    void signedOutACountryIsRefusedAndNothingChanges() throws Exception {
        try (SyncAgent a = open()) {
            a.setAccount(null, null);
            AuthException e = assertThrows(AuthException.class, () -> a.setAccountCountry("IN"));
            assertEquals(SyncException.KIND_NO_ACCOUNT, e.getKind());
            SyncException bad = assertThrows(SyncException.class, () -> a.setAccount(null, "IN"));
            assertEquals(SyncException.KIND_INVALID_ARGUMENT, bad.getKind());
            assertNull(a.configInfo().getCountry());
            assertEquals(0, server.requests());
        }
    }
}

package com.miui.cloudsync;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 21 through JNI: trust is anchored in the root passed to {@link SyncAgent#open}, never in
 * what the database says. A database planted with an attacker's root and a config that sends the
 * account's country to the attacker's host sends that host nothing, whether the attacker's root
 * has the firmware root's version (reset at open, {@link ConfigInfo#getTrustReset()}) or a newer
 * one (not anchored, {@link ConfigInfo#isAnchored()}, until the firmware root's mirror shows it is
 * not on its chain).
 *
 * <p>Two tus servers (the genuine one and the attacker's) and the genuine root's mirror run in a
 * {@code cloudsync dev-server --admin} child process ({@link TestServer}), each with a CA of its
 * own. Every agent trusts every test CA, so only the trust decisions keep the
 * uploads away from the attacker's server. Runs under {@code java -Xcheck:jni}.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
// Also checks that the string getters deprecated by issue 24 still return what they did.
@SuppressWarnings("deprecation")
class AnchorTest {
    private static final TestEnvelopes.Key ROOT_KEY = new TestEnvelopes.Key();
    private static final TestEnvelopes.Key CONFIG_KEY = new TestEnvelopes.Key();
    /** The reason a root of the stored root's version with other bytes gives. */
    private static final String DIFFERS = "the stored root differs from the firmware root";
    /** The reason a walk of the firmware root's mirror that ends below the stored root gives. */

    @TempDir Path dir;

    private static TestServer.DevServer devServer;

    private TestServer genuine;
    private TestServer planted;
    private TestServer mirror;
    private Path mirrorFiles;
    private byte[] cas;

    @BeforeAll
    static void launchDevServer() throws Exception {
        devServer = TestServer.DevServer.launch(AnchorTest.class);
    }

    @AfterAll
    static void stopDevServer() throws Exception {
        if (devServer != null) {
            devServer.close();
        }
    }

    @BeforeEach
    void startServers() throws Exception {
        genuine = devServer.server(null);
        planted = devServer.server(null);
        mirror = devServer.mirror();
        mirrorFiles = mirror.mirrorDir;
        ByteArrayOutputStream pem = new ByteArrayOutputStream();
        for (TestServer server : new TestServer[] {genuine, planted, mirror}) {
            pem.write(server.caPem);
            pem.write('\n');
        }
        cas = pem.toByteArray();
    }

    @AfterEach
    void stopServers() {
        for (TestServer server : new TestServer[] {genuine, planted, mirror}) {
            server.close();
        }
    }

    private static long requests(TestServer server) {
        return server.requests();
    }

    private static int port(TestServer server) {
        return server.port;
    }

    /** The firmware root: version 1, listing the genuine mirror. */
    private byte[] firmwareRoot() throws SyncException {
        return TestEnvelopes.rootWithSources(
                1, ROOT_KEY, CONFIG_KEY, "https://127.0.0.1:" + port(mirror) + "/sources/");
    }

    /** The genuine config: {@code IN} to region {@code lo} on the genuine server. */
    private byte[] genuineConfig() throws SyncException {
        return TestEnvelopes.loopbackConfig(CONFIG_KEY, 1, port(genuine));
    }

    private String file(String name, int size) throws IOException {
        byte[] b = new byte[size];
        new Random(name.hashCode()).nextBytes(b);
        Path p = dir.resolve(name);
        Files.write(p, b);
        return p.toAbsolutePath().toString();
    }

    /** A planted database file and the attacker's root it was made with. */
    private static final class Planted {
        final String db;
        final byte[] root;

        Planted(String db, byte[] root) {
            this.db = db;
            this.root = root;
        }
    }

    /**
     * A database made elsewhere: the attacker's own root of {@code rootVersion} (self-signed, no
     * mirrors) and config, which sends {@code IN} to the attacker's server, the country set to
     * {@code IN} and one photo queued.
     */
    private Planted plant(String name, int rootVersion) throws Exception {
        TestEnvelopes.Key rk = new TestEnvelopes.Key();
        TestEnvelopes.Key ck = new TestEnvelopes.Key();
        String db = dir.resolve(name).toString();
        byte[] root = bareRoot(rootVersion, rk, ck);
        try (SyncAgent a = SyncAgent.openForTest(db, root, cas)) {
            a.installConfig(TestEnvelopes.loopbackConfig(ck, 9, port(planted)));
            a.setAccountCountry("IN");
            a.enqueue(file(name + ".photo", 64 * 1024), "backup", 0);
            assertEquals("lo", a.approvedRegion());
        }
        return new Planted(db, root);
    }

    /** A root of {@code version} without mirrors, signed by its own root key. */
    private static byte[] bareRoot(int version, TestEnvelopes.Key rk, TestEnvelopes.Key ck) {
        String payload = "{\"version\":" + version + ",\"expires_at\":\"2099-01-01T00:00:00Z\",\"keys\":{"
                + keyEntry(rk) + "," + keyEntry(ck) + "},\"roles\":{"
                + "\"root\":{\"keyids\":[\"" + rk.keyid + "\"],\"threshold\":1},"
                + "\"config\":{\"keyids\":[\"" + ck.keyid + "\"],\"threshold\":1}}}";
        return TestEnvelopes.envelope(TestEnvelopes.ROOT_TYPE, payload, rk);
    }

    private static String keyEntry(TestEnvelopes.Key k) {
        return "\"" + k.keyid + "\":{\"type\":\"ed25519\",\"public\":\"" + TestEnvelopes.hex(k.rawPublic)
                + "\"}";
    }

    @Test
    void thePlantedDatabaseUploadsUnderItsOwnRoot() throws Exception {
        // The control: the planted file is good enough to reach the attacker's server when it is
        // opened with the attacker's trust, so the tests below see the anchor at work, not a
        // broken setup.
        Planted p = plant("control.db", 1);
        try (SyncAgent a = SyncAgent.openForTest(p.db, p.root, cas)) {
            ConfigInfo info = a.configInfo();
            assertTrue(info.isAnchored(), info.toString());
            assertNull(info.getTrustReset(), info.toString());
            RunReport run = a.runOnce(20_000, null);
            assertEquals(1, run.getUploaded(), run.toString());
        }
        assertTrue(requests(planted) > 0);
        assertEquals(1, planted.uploadsCompleted(), "completed on the planted server");
    }

    @Test
    void aPlantedDatabaseOfTheFirmwareRootsVersionSendsNothingToThePlantedHost() throws Exception {
        String db = plant("planted-v1.db", 1).db;
        assertEquals(0, requests(planted));
        // The app opens its database with its firmware root (v1, other keys than the file's v1).
        try (SyncAgent a = SyncAgent.openForTest(db, firmwareRoot(), cas)) {
            ConfigInfo info = a.configInfo();
            assertEquals(DIFFERS, info.getTrustReset(), info.toString());
            assertTrue(info.isAnchored(), info.toString());
            assertEquals(1, info.getRootVersion(), info.toString());
            assertFalse(info.hasConfig(), "the planted config is dropped: " + info);
            assertNull(info.getApprovedRegion(), info.toString());
            assertEquals("IN", info.getCountry(), "the account's country is kept: " + info);
            assertTrue(info.toString().contains("trustReset=" + DIFFERS), info.toString());
            assertEquals(1, a.stats().getPending(), "the queue is kept");
            assertNull(a.approvedRegion());

            // The run refreshes first (due at once without a config); the genuine mirror has no
            // config yet, so nothing uploads anywhere.
            ConfigException e = assertThrows(ConfigException.class, () -> a.runOnce(20_000, null));
            assertEquals("no_config", e.getKind(), e.toString());
            assertEquals(0, requests(planted), "nothing reached the planted host");
            assertEquals(0, requests(genuine));

            // The genuine config, from the mirror: accepted, the reset is over, and the photo
            // goes to the genuine server only.
            Files.write(mirrorFiles.resolve("config.json"), genuineConfig());
            ConfigRefresh r = a.refreshConfig();
            assertEquals(1, r.getConfigVersion(), r.toString());
            assertEquals(1, r.getRootVersion(), r.toString());
            assertNull(r.getConfigError(), r.toString());
            assertFalse(r.hasMoreRoots(), r.toString());
            info = a.configInfo();
            assertNull(info.getTrustReset(), info.toString());
            assertEquals("lo", info.getApprovedRegion(), info.toString());
            RunReport run = a.runOnce(20_000, null);
            assertEquals(1, run.getUploaded(), run.toString());
            assertEquals(1, genuine.uploadsCompleted(), "completed on the genuine server");
        }
        assertEquals(0, requests(planted), "nothing ever reached the planted host");
    }

    @Test
    void aPlantedDatabaseOfANewerRootIsNotAnchoredAndSendsNothingToThePlantedHost()
            throws Exception {
        String db = plant("planted-v2.db", 2).db;
        try (SyncAgent a = SyncAgent.openForTest(db, firmwareRoot(), cas)) {
            // The file's root v2 is newer than the firmware root and no chain from v1 leads to
            // it: not anchored (reads only) until the firmware root's mirror is asked.
            ConfigInfo info = a.configInfo();
            assertFalse(info.isAnchored(), info.toString());
            assertNull(info.getTrustReset(), "no verdict yet: " + info);
            assertEquals(2, info.getRootVersion(), info.toString());
            assertNull(info.getApprovedRegion(), info.toString());
            assertNotNull(info.getRefreshDueAt(), info.toString());
            assertFalse(Instant.parse(info.getRefreshDueAt()).isAfter(Instant.now().plusSeconds(5)),
                    "a refresh is due at once: " + info);
            ConfigException e = assertThrows(ConfigException.class, a::approvedRegion);
            assertEquals(SyncException.KIND_ROOT_MISMATCH, e.getKind(), e.toString());
            assertEquals(19, e.getCode());
            e = assertThrows(ConfigException.class, () -> a.installConfig(genuineConfig()));
            assertEquals(SyncException.KIND_ROOT_MISMATCH, e.getKind(), e.toString());
            assertEquals(1, a.stats().getPending(), "reads work");

            // The run asks the firmware root's mirror first: v1 is the newest there (root/2.json
            // is a 404). A 404 proves nothing (a mirror may lag, or someone in front of it may
            // withhold a root), so the file stays unverified: reads only, nothing uploads, no
            // verdict either way.
            Files.write(mirrorFiles.resolve("config.json"), genuineConfig());
            e = assertThrows(ConfigException.class, () -> a.runOnce(20_000, null));
            assertEquals(SyncException.KIND_ROOT_MISMATCH, e.getKind(), e.toString());
            info = a.configInfo();
            assertFalse(info.isAnchored(), info.toString());
            assertNull(info.getTrustReset(), info.toString());
            assertEquals(0, requests(planted), "nothing reached the planted host");
            assertEquals(0, requests(genuine));
        }
        assertEquals(0, requests(planted), "nothing ever reached the planted host");
    }
}

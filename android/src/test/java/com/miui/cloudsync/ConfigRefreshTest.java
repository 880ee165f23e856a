package com.miui.cloudsync;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link SyncAgent#refreshConfig()} through JNI (issue 13): the agent fetches a root rotation and
 * the config from a root's mirror over loopback TLS. The mirror runs in a {@code cloudsync
 * dev-server --admin} child process ({@link TestServer}) and serves a directory the tests publish
 * into.
 * Runs under {@code java -Xcheck:jni}.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
// Also checks that the string getters deprecated by issue 24 still return what they did.
@SuppressWarnings("deprecation")
class ConfigRefreshTest {
    private static final TestEnvelopes.Key ROOT_KEY = new TestEnvelopes.Key();
    private static final TestEnvelopes.Key CONFIG_KEY = new TestEnvelopes.Key();

    @TempDir Path dir;

    private static TestServer.DevServer devServer;

    private Path files;
    private TestServer mirror;
    private String hostPort;
    private byte[] caPem;
    private byte[] root1;

    @BeforeAll
    static void launchDevServer() throws Exception {
        devServer = TestServer.DevServer.launch(ConfigRefreshTest.class);
    }

    @AfterAll
    static void stopDevServer() throws Exception {
        if (devServer != null) {
            devServer.close();
        }
    }

    @BeforeEach
    void startMirror() {
        mirror = devServer.mirror();
        files = mirror.mirrorDir;
        hostPort = "127.0.0.1:" + mirror.port;
        caPem = mirror.caPem;
        root1 = root(1);
    }

    @AfterEach
    void stopMirror() {
        mirror.close();
    }

    private byte[] root(int version) {
        return TestEnvelopes.rootWithSources(
                version, ROOT_KEY, CONFIG_KEY, "https://" + hostPort + "/sources/");
    }

    /** Writes {@code rel} in the mirror's directory aside, then renames it into place. */
    private void publish(String rel, byte[] bytes) throws IOException {
        Path target = files.resolve(rel);
        Path aside = target.resolveSibling(target.getFileName() + ".tmp~");
        Files.write(aside, bytes);
        Files.move(aside, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    private void publishRotationAndConfig() throws IOException {
        publish("root/2.json", root(2));
        publish("config.json", TestEnvelopes.twoRegionConfig(CONFIG_KEY, 1));
    }

    private SyncAgent open() throws SyncException {
        return SyncAgent.openForTest(dir.resolve("cloudsync.db").toString(), root1, caPem);
    }

    @Test
    void refreshInstallsTheNextRootAndTheConfigFromTheMirror() throws Exception {
        publishRotationAndConfig();
        try (SyncAgent a = open()) {
            ConfigInfo before = a.configInfo();
            assertEquals(1, before.getRootVersion());
            assertFalse(before.hasConfig());
            assertNotNull(before.getRefreshDueAt(), "a root with sources has a refresh time");
            Instant dueBefore = Instant.parse(before.getRefreshDueAt());
            assertFalse(dueBefore.isAfter(Instant.now().plusSeconds(5)), "due at once without a config");

            ConfigRefresh r = a.refreshConfig();
            assertArrayEquals(new long[] {2}, r.getRootVersions(), r.toString());
            assertEquals(1, r.getConfigVersion(), r.toString());
            assertEquals(2, r.getRootVersion(), r.toString());
            assertNull(r.getConfigError(), r.toString());
            assertFalse(r.hasMoreRoots(), r.toString());
            assertFalse(r.isUnchanged());
            assertEquals(hostPort, r.getMirror());
            r.getRootVersions()[0] = 99;
            assertArrayEquals(new long[] {2}, r.getRootVersions(), "a copy");

            ConfigInfo after = a.configInfo();
            assertEquals(2, after.getRootVersion());
            assertEquals(1, after.getConfigVersion());
            assertEquals(2, after.getRegions().size());
            Instant due = Instant.parse(after.getRefreshDueAt());
            assertTrue(due.isAfter(Instant.now().plus(Duration.ofMinutes(50))),
                    "not due again for an hour or more: " + after);
            assertTrue(after.toString().contains("refreshDueAt=" + after.getRefreshDueAt()));

            // Nothing new: unchanged (a 304 for the config).
            ConfigRefresh again = a.refreshConfig();
            assertTrue(again.isUnchanged(), again.toString());
            assertEquals(0, again.getRootVersions().length);
            assertEquals(-1, again.getConfigVersion());
            assertEquals(2, again.getRootVersion(), "in force, though not installed now");
            assertEquals(hostPort, again.getMirror());
        }
    }

    @Test
    void aFailingMirrorThrowsItsKindAndAFailingConfigKeepsTheVerifiedRoots() throws Exception {
        publishRotationAndConfig();
        try (SyncAgent a = open()) {
            mirror.fail(null, 500);
            NetworkException e = assertThrows(NetworkException.class, a::refreshConfig);
            assertEquals("network", e.getKind(), e.toString());
            assertEquals(50, e.getCode());
            ConfigInfo info = a.configInfo();
            assertEquals(1, info.getRootVersion());
            assertFalse(info.hasConfig());

            // The rotation verifies but the config does not: the verified root is kept, the
            // config's failure is reported, and the next refresh is due at once.
            publish("config.json", "not an envelope".getBytes(StandardCharsets.UTF_8));
            ConfigRefresh r = a.refreshConfig();
            assertArrayEquals(new long[] {2}, r.getRootVersions(), r.toString());
            assertEquals(2, r.getRootVersion(), r.toString());
            assertEquals(-1, r.getConfigVersion(), r.toString());
            assertEquals("malformed", r.getConfigError(), r.toString());
            assertFalse(r.hasMoreRoots(), r.toString());
            assertFalse(r.isUnchanged(), r.toString());
            assertTrue(r.toString().contains("configError=malformed"), r.toString());
            info = a.configInfo();
            assertEquals(2, info.getRootVersion(), "the verified root is kept");
            assertFalse(info.hasConfig());
            assertFalse(Instant.parse(info.getRefreshDueAt()).isAfter(Instant.now().plusSeconds(5)),
                    "due again at once: " + info);

            // Nothing installed and the config fails again: thrown, nothing changed.
            ConfigException c = assertThrows(ConfigException.class, a::refreshConfig);
            assertEquals("malformed", c.getKind(), c.toString());
            assertEquals(2, a.configInfo().getRootVersion());

            publish("config.json", TestEnvelopes.twoRegionConfig(CONFIG_KEY, 1));
            r = a.refreshConfig();
            assertArrayEquals(new long[0], r.getRootVersions(), r.toString());
            assertEquals(2, r.getRootVersion(), r.toString());
            assertEquals(1, r.getConfigVersion());
            assertNull(r.getConfigError(), r.toString());
        }
    }

    @Test
    void runOnceRefreshesFirstWhenDue() throws Exception {
        publishRotationAndConfig();
        try (SyncAgent a = open()) {
            a.setAccountCountry("IN");
            assertNull(a.approvedRegion(), "no config yet");
            RunReport r = a.runOnce(30_000, null);
            assertEquals(RunReport.StopReason.DRAINED, r.getStopped());
            assertEquals("in", r.getRegion());
            ConfigInfo info = a.configInfo();
            assertEquals(2, info.getRootVersion());
            assertEquals(1, info.getConfigVersion());
        }
    }

    @Test
    void aRootWithoutSourcesHasNoRefresh() throws Exception {
        byte[] plain = TestEnvelopes.root(ROOT_KEY, CONFIG_KEY);
        try (SyncAgent a = SyncAgent.openForTest(dir.resolve("plain.db").toString(), plain, caPem)) {
            assertNull(a.configInfo().getRefreshDueAt());
            SyncException e = assertThrows(SyncException.class, a::refreshConfig);
            assertEquals(SyncException.class, e.getClass());
            assertEquals("invalid_argument", e.getKind(), e.toString());
        }
    }

    @Test
    void closedAgentThrowsIllegalState() throws Exception {
        SyncAgent a = open();
        a.close();
        assertThrows(IllegalStateException.class, a::refreshConfig);
    }

    @Test
    void consumerRulesKeepTheConstructorsNativeCodeCalls() throws Exception {
        ConfigRefresh.class.getDeclaredConstructor(long[].class, long.class, String.class, long.class,
                String.class, boolean.class);
        ConfigInfo.class.getDeclaredConstructor(long.class, long.class, boolean.class,
                String[].class, String.class, String.class, boolean.class, String.class,
                long.class, long.class);
        Path rules = Paths.get("android/consumer-rules.pro");
        if (!Files.exists(rules)) {
            rules = Paths.get("consumer-rules.pro"); // Gradle runs tests in android/
        }
        String text = new String(Files.readAllBytes(rules), StandardCharsets.UTF_8);
        assertTrue(text.contains("-keep class com.miui.cloudsync.ConfigRefresh {\n"
                + "    <init>(long[], long, java.lang.String, long, java.lang.String, boolean);"), text);
        assertTrue(text.contains("-keep class com.miui.cloudsync.ConfigInfo {\n"
                + "    <init>(long, long, boolean, java.lang.String[], java.lang.String,"
                + " java.lang.String, boolean, java.lang.String, long, long);"), text);
    }
}

package com.miui.cloudsync;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * String arguments crossing JNI (issue 24): {@link SyncAgent#enqueueAll} releases each path's
 * local references (under {@code -Xcheck:jni} HotSpot warns "JNI local refs: N, exceeds capacity"
 * otherwise, which scripts/test-jvm.sh fails on), and an unpaired UTF-16 surrogate is refused
 * with {@code invalid_argument} instead of becoming U+FFFD.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class JniStringArgsTest {
    private static final TestEnvelopes.Key ROOT_KEY = new TestEnvelopes.Key();
    private static final TestEnvelopes.Key CONFIG_KEY = new TestEnvelopes.Key();
    private static final byte[] ROOT = TestEnvelopes.root(ROOT_KEY, CONFIG_KEY);

    @TempDir Path dir;

    private SyncAgent open() throws SyncException {
        return SyncAgent.open(dir.resolve("cloudsync.db").toString(), ROOT);
    }

    private String file(String name) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, new byte[] {1, 2, 3});
        return p.toAbsolutePath().toString();
    }

    /**
     * An {@code invalid_argument} whose message names the parameter ({@code "<param> is not valid
     * UTF-16"}, as C's {@code "<param> is not valid UTF-8"}).
     */
    private static void assertInvalid(String message, Executable call) {
        SyncException e = assertThrows(SyncException.class, call);
        assertEquals(SyncException.class, e.getClass(), e.toString());
        assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind(), e.toString());
        assertEquals("invalid argument: " + message, e.getMessage(), e.toString());
    }

    @Test
    void anUnpairedSurrogateInDbPathIsNamed() {
        assertInvalid("dbPath is not valid UTF-16", () -> SyncAgent.open(dir.resolve("db").toString() + "\uD800", ROOT));
    }

    @Test
    void enqueueAllOfManyPathsQueuesThemAll() throws Exception {
        int n = 5_000;
        String[] paths = new String[n];
        for (int i = 0; i < n; i++) {
            paths[i] = file("f" + i);
        }
        try (SyncAgent a = open()) {
            long[] ids = a.enqueueAll(paths, "backup", 0);
            assertEquals(n, ids.length);
            assertEquals(n, a.stats().getPending());
        }
    }

    @Test
    @SuppressWarnings("deprecation") // listItems(String, ...): the only state given as text
    void unpairedSurrogatesAreInvalidArguments() throws Exception {
        String f = file("plain");
        try (SyncAgent a = open()) {
            assertInvalid("accountId is not valid UTF-16", () -> a.setAccount("user\uD800", "IN"));
            assertInvalid("accountId is not valid UTF-16", () -> a.setAccount("user\uDC00", null));
            assertInvalid("iso2 is not valid UTF-16", () -> a.setAccount("user", "I\uD800"));
            assertInvalid("iso2 is not valid UTF-16", () -> a.setAccountCountry("I\uDC00"));
            assertNull(a.approvedRegion(), "no account and no country were set");
            assertInvalid("state is not valid UTF-16", () -> a.listItems("pending\uD800", 0, 10));
            assertInvalid("path is not valid UTF-16", () -> a.enqueue(f + "\uDC00", "backup", 0));
            assertInvalid("service is not valid UTF-16", () -> a.enqueue(f, "backup\uD800", 0));
            assertInvalid("paths contains a string that is not valid UTF-16",
                    () -> a.enqueueAll(new String[] {f, f + "\uDC00"}, "backup", 0));
            assertInvalid("service is not valid UTF-16", () -> a.enqueueAll(new String[] {f}, "backup\uDC00", 0));
            assertInvalid("expectedRegion is not valid UTF-16", () -> a.rehome("i\uD800"));
            assertEquals(0, a.stats().getPending(), "nothing was queued");
            // A proper pair (U+1F600) is fine: only unpaired halves are refused.
            String emoji = file("smile-\uD83D\uDE00");
            a.enqueue(emoji, "backup", 0);
            assertEquals(emoji, a.listItemsIn(null, 0, 10).get(0).getPath());
        }
    }
}

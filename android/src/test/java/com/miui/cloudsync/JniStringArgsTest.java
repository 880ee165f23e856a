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

    private static void assertInvalidArgument(SyncException e) {
        assertEquals(SyncException.class, e.getClass(), e.toString());
        assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind(), e.toString());
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
    void unpairedSurrogatesAreInvalidArguments() throws Exception {
        String f = file("plain");
        try (SyncAgent a = open()) {
            assertInvalidArgument(assertThrows(SyncException.class, () -> a.setAccount("user\uD800", "IN")));
            assertInvalidArgument(assertThrows(SyncException.class, () -> a.setAccount("user\uDC00", null)));
            assertInvalidArgument(assertThrows(SyncException.class, () -> a.setAccountCountry("I\uDC00")));
            assertNull(a.approvedRegion(), "no account and no country were set");
            assertInvalidArgument(assertThrows(SyncException.class, () -> a.enqueue(f + "\uDC00", "backup", 0)));
            assertInvalidArgument(assertThrows(SyncException.class, () -> a.enqueue(f, "backup\uD800", 0)));
            assertInvalidArgument(assertThrows(SyncException.class,
                    () -> a.enqueueAll(new String[] {f, f + "\uDC00"}, "backup", 0)));
            assertEquals(0, a.stats().getPending(), "nothing was queued");
            // A proper pair (U+1F600) is fine: only unpaired halves are refused.
            String emoji = file("smile-\uD83D\uDE00");
            a.enqueue(emoji, "backup", 0);
            assertEquals(emoji, a.listItems(null, 0, 10).get(0).getPath());
        }
    }
}

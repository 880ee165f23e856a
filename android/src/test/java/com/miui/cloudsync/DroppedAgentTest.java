package com.miui.cloudsync;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 24: a {@link SyncAgent} dropped without {@link SyncAgent#close()} is freed once it is
 * collected (each held 2 fds and ~120 KB until the process died), and one closed explicitly is
 * never freed a second time (the cleanup counts refused frees: {@link SyncAgent#failedFrees()}).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DroppedAgentTest {
    private static final TestEnvelopes.Key ROOT_KEY = new TestEnvelopes.Key();
    private static final TestEnvelopes.Key CONFIG_KEY = new TestEnvelopes.Key();
    private static final byte[] ROOT = TestEnvelopes.root(ROOT_KEY, CONFIG_KEY);

    @TempDir Path dir;

    private static int openFds() {
        String[] fds = new File("/proc/self/fd").list();
        return fds == null ? -1 : fds.length;
    }

    /** Opens and drops n agents; a method of its own so no local keeps one reachable. */
    private void openAndDrop(String prefix, int n) throws SyncException {
        for (int i = 0; i < n; i++) {
            SyncAgent a = SyncAgent.open(dir.resolve(prefix + i + ".db").toString(), ROOT);
            a.stats();
        }
    }

    /** Collects until the fd count is at most {@code limit} or 20 s pass; returns the count. */
    private static int collectUntil(int limit) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        int fds = openFds();
        while (fds > limit && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(100);
            fds = openFds();
        }
        return fds;
    }

    @Test
    void droppedAgentsAreFreed() throws Exception {
        int before = openFds();
        int n = 500;
        openAndDrop("dropped-", n);
        int opened = openFds();
        assertTrue(opened >= before + n, "each open agent holds fds: before " + before + ", with " + n + " open " + opened);
        int after = collectUntil(before + 50);
        System.out.println("DroppedAgentTest: fds before " + before + ", with " + n + " dropped agents " + opened
                + ", after collection " + after);
        assertTrue(after <= before + 50, "fds before " + before + ", after " + after);
    }

    @Test
    void closedThenCollectedAgentIsNotClosedTwice() throws Exception {
        long failedBefore = SyncAgent.failedFrees();
        int before = openFds();
        for (int i = 0; i < 50; i++) {
            SyncAgent a = SyncAgent.open(dir.resolve("closed-" + i + ".db").toString(), ROOT);
            a.close();
            a.close();
        }
        // A drop of open agents as well, so collection and the queue are known to run.
        openAndDrop("mixed-", 50);
        int after = collectUntil(before + 10);
        assertTrue(after <= before + 10, "fds before " + before + ", after " + after);
        // A later open drains the queue too. The closed agents' handles were not freed twice: a
        // second free is refused by the native handle registry (a SyncException the cleanup
        // swallows and counts, see failedFreeIsCounted), so the count must not have moved.
        try (SyncAgent a = SyncAgent.open(dir.resolve("last.db").toString(), ROOT)) {
            assertEquals(0, a.stats().getPending());
        }
        assertEquals(failedBefore, SyncAgent.failedFrees(), "frees refused (double frees)");
    }

    @Test
    void failedFreeIsCounted() throws Exception {
        long h = NativeBridge.open(dir.resolve("twice.db").toString(), ROOT);
        ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
        long before = SyncAgent.failedFrees();
        SyncAgent.freeHandle(h, lock);
        assertEquals(before, SyncAgent.failedFrees(), "the first free succeeds");
        SyncAgent.freeHandle(h, lock);
        assertEquals(before + 1, SyncAgent.failedFrees(), "a second free of the same handle fails, counted");
        assertFalse(lock.isWriteLocked(), "the lock is released after a failed free");
    }
}

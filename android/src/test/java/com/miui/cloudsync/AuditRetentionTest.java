package com.miui.cloudsync;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The audit retention through the Java API (issue 16): one value in the database for every
 * agent on the file, out-of-range values refused with nothing changed, and pruning on demand.
 * Pruning itself (bounded transactions, pages given back) is tested in Rust, {@code
 * tests/queue/retention.rs}.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AuditRetentionTest {
    private static final byte[] ROOT =
            TestEnvelopes.root(new TestEnvelopes.Key(), new TestEnvelopes.Key());

    @TempDir Path dir;

    @Test
    void retentionIsSharedRefusedOutOfRangeAndPrunes() throws Exception {
        String db = dir.resolve("cloudsync.db").toString();
        SyncAgent a = SyncAgent.open(db, ROOT);
        try (SyncAgent b = SyncAgent.open(db, ROOT)) {
            assertEquals(400, b.getAuditRetentionDays());
            for (int bad : new int[] {0, -1, 36501, Integer.MIN_VALUE}) {
                SyncException e = assertThrows(SyncException.class, () -> a.setAuditRetentionDays(bad));
                assertEquals(SyncException.class, e.getClass(), e.toString());
                assertEquals(SyncException.KIND_INVALID_ARGUMENT, e.getKind());
                assertEquals(62, e.getCode());
                assertTrue(e.getMessage().contains("1..=36500 days"), e.getMessage());
                assertEquals(400, b.getAuditRetentionDays(), "nothing changed");
            }
            assertEquals(0, a.setAuditRetentionDays(30), "nothing to prune yet");
            assertEquals(30, b.getAuditRetentionDays(), "the other agent sees it");
            assertEquals(0, b.pruneAudit());
            assertEquals(0, b.stats().getDone());
            a.close();
            assertThrows(IllegalStateException.class, a::getAuditRetentionDays);
            assertThrows(IllegalStateException.class, () -> a.setAuditRetentionDays(30));
            assertThrows(IllegalStateException.class, a::pruneAudit);
        } finally {
            a.close();
        }
        try (SyncAgent c = SyncAgent.open(db, ROOT)) {
            assertEquals(30, c.getAuditRetentionDays(), "kept in the database");
        }
    }
}

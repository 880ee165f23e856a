package com.miui.cloudsync;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import android.content.Context;
import androidx.test.ext.junit.runners.AndroidJUnit4;
import androidx.test.platform.app.InstrumentationRegistry;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import org.junit.Test;
import org.junit.runner.RunWith;

/**
 * Instrumentation smoke test on a device or emulator: the packaged libcloudsync.so loads for
 * the device's ABI, and open, enqueue, stats, a typed exception and close work from the app's
 * private files directory. Run with {@code ./gradlew :cloudsync:connectedAndroidTest}.
 *
 * <p>{@code assets/test-root.json} is a throwaway root (version 1, expires 2099) whose private
 * keys were discarded: it can open a database but sign nothing.
 */
@RunWith(AndroidJUnit4.class)
public class SyncAgentSmokeTest {
    private static byte[] asset(String name) throws IOException {
        Context test = InstrumentationRegistry.getInstrumentation().getContext();
        try (InputStream in = test.getAssets().open(name)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            for (int n; (n = in.read(buf)) > 0; ) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        }
    }

    @Test
    public void openEnqueueStatsClose() throws Exception {
        Context app = InstrumentationRegistry.getInstrumentation().getTargetContext();
        File dir = new File(app.getFilesDir(), "cloudsync-smoke");
        assertTrue(dir.isDirectory() || dir.mkdirs());
        File db = new File(dir, "cloudsync.db");
        File payload = new File(dir, "payload.bin");
        db.delete();
        new File(dir, "cloudsync.db-wal").delete();
        new File(dir, "cloudsync.db-shm").delete();
        try (FileOutputStream out = new FileOutputStream(payload)) {
            out.write(new byte[4096]);
        }

        SyncAgent agent = SyncAgent.open(db.getPath(), asset("test-root.json"));
        try {
            assertEquals(1, agent.configInfo().getRootVersion());
            assertNull(agent.approvedRegion());
            long id = agent.enqueue(payload.getAbsolutePath(), "backup", 0);
            assertTrue(id > 0);
            QueueStats stats = agent.stats();
            assertEquals(1, stats.getPending());
            assertEquals(4096, stats.getPendingBytes());
            try {
                agent.installConfig("garbage".getBytes("UTF-8"));
                fail("garbage installed");
            } catch (ConfigException e) {
                assertEquals(SyncException.KIND_MALFORMED, e.getKind());
            }
            try {
                agent.runOnce(1000, null);
                fail("ran without a config");
            } catch (ConfigException e) {
                assertEquals(SyncException.KIND_NO_CONFIG, e.getKind());
            }
        } finally {
            agent.close();
        }
        agent.close(); // idempotent
        try {
            agent.stats();
            fail("used after close");
        } catch (IllegalStateException expected) {
            // the documented behaviour
        }
    }
}

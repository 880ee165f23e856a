package com.example.app;

import com.miui.cloudsync.CredentialProvider;
import com.miui.cloudsync.ItemInfo;
import com.miui.cloudsync.ProgressListener;
import com.miui.cloudsync.RunListener;
import com.miui.cloudsync.SyncAgent;
import com.miui.cloudsync.SyncException;

/**
 * Stands in for an app in scripts/android-java-check.sh's ProGuard run: it uses the API as an app
 * does, with its own implementations of the listeners and the credential provider (anonymous
 * classes, which R8/ProGuard may rename unless consumer-rules.pro keeps the names native code
 * calls). Never run; only shrunk and obfuscated.
 */
public final class KeepFixture {
    private KeepFixture() {}

    public static void main(String[] args) throws SyncException {
        try (SyncAgent agent = SyncAgent.open(args[0], new byte[0])) {
            agent.setCredentialProvider(new CredentialProvider() {
                @Override
                public String getToken(String account, String region, String service, boolean refresh) {
                    return args[1];
                }
            });
            agent.runOnce(1000, new ProgressListener() {
                @Override
                public void onProgress(long itemId, long sent, long total) {
                    System.out.println(itemId + sent + total);
                }
            });
            agent.runOnce(1000, new RunListener() {
                @Override
                public void onItemStarted(long itemId, long size) {
                    System.out.println(itemId + size);
                }

                @Override
                public void onProgress(long itemId, long sent, long total) {
                    System.out.println(itemId + sent + total);
                }

                @Override
                public void onItemDone(long itemId, long bytes) {
                    System.out.println(itemId + bytes);
                }

                @Override
                public void onItemFailed(long itemId, String kind, boolean dead, long next) {
                    System.out.println(kind + dead + next);
                }

                @Override
                public void onItemHeld(long itemId) {
                    System.out.println(itemId);
                }
            });
            ItemInfo item = agent.getItem(1);
            System.out.println(item == null ? SyncAgent.version() : item.getItemState() + " " + item.getItemHeldReason());
            System.out.println(agent.getAccountState() + " " + agent.configInfo().getExpiresAtMillis());
        }
    }
}

package com.miui.cloudsync;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The typed Java surface of issue 24: the enums mirror the native tables ({@code coded_enum!} in
 * {@code src/}, read here from the sources: a name added there and not here fails), unknown names
 * read as {@code UNKNOWN}, {@link ItemInfo#getItemState()}, {@link ItemInfo#getItemHeldReason()},
 * {@link SyncAgent#getAccountState()}, and times in milliseconds ({@code -1}: none) next to the
 * deprecated getters, which still return what they did.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
@SuppressWarnings("deprecation") // the deprecated getters are compared with their replacements
class JavaSurfaceTest {
    private static final TestEnvelopes.Key ROOT_KEY = new TestEnvelopes.Key();
    private static final TestEnvelopes.Key CONFIG_KEY = new TestEnvelopes.Key();
    private static final byte[] ROOT = TestEnvelopes.root(ROOT_KEY, CONFIG_KEY);

    @TempDir Path dir;

    /** Rust enum name -> its snake_case names, from every {@code coded_enum!} table in src/. */
    private static Map<String, Set<String>> nativeTables() throws IOException {
        Map<String, Set<String>> tables = new HashMap<>();
        Pattern table = Pattern.compile("pub enum (\\w+), c_prefix \"[^\"]*\"[^{]*\\{(.*?)\\n    \\}", Pattern.DOTALL);
        Pattern entry = Pattern.compile("\\w+ = -?\\d+, \"(\\w+)\"");
        try (Stream<Path> files = Files.walk(Paths.get("src"))) {
            for (Path f : files.filter(p -> p.toString().endsWith(".rs")).collect(Collectors.toList())) {
                String text = new String(Files.readAllBytes(f), StandardCharsets.UTF_8);
                for (Matcher t = table.matcher(text); t.find(); ) {
                    Set<String> names = new TreeSet<>();
                    for (Matcher e = entry.matcher(t.group(2)); e.find(); ) {
                        names.add(e.group(1));
                    }
                    tables.put(t.group(1), names);
                }
            }
        }
        return tables;
    }

    private static <E extends Enum<E>> void assertMirrors(
            Set<String> natives, Class<E> type, Function<String, E> fromNative, E unknown) {
        assertFalse(natives.isEmpty(), "no native names for " + type);
        Set<String> constants = new TreeSet<>();
        for (E e : type.getEnumConstants()) {
            if (e != unknown) {
                constants.add(e.name());
            }
        }
        Set<String> upper = natives.stream().map(n -> n.toUpperCase(Locale.ROOT))
                .collect(Collectors.toCollection(TreeSet::new));
        assertEquals(upper, constants, type + " mirrors the native table");
        for (String n : natives) {
            assertEquals(n.toUpperCase(Locale.ROOT), fromNative.apply(n).name());
        }
        assertSame(unknown, fromNative.apply("added_by_a_newer_library"));
        assertSame(unknown, fromNative.apply(null));
        assertSame(unknown, fromNative.apply(""));
    }

    @Test
    void theJavaEnumsMirrorTheNativeTables() throws Exception {
        Map<String, Set<String>> t = nativeTables();
        assertMirrors(t.get("State"), ItemState.class, ItemState::fromNative, ItemState.UNKNOWN);
        assertMirrors(t.get("HeldReason"), HeldReason.class, HeldReason::fromNative, HeldReason.UNKNOWN);
        assertMirrors(t.get("AccountState"), AccountState.class, AccountState::fromNative,
                AccountState.UNKNOWN);
        assertMirrors(t.get("StopReason"), RunReport.StopReason.class, RunReport.StopReason::fromNative,
                RunReport.StopReason.UNKNOWN);
        // Error kinds stay strings (SyncException.KIND_*): one constant per native name.
        Set<String> kinds = new TreeSet<>();
        for (Field f : SyncException.class.getFields()) {
            if (f.getName().startsWith("KIND_") && Modifier.isStatic(f.getModifiers())) {
                kinds.add((String) f.get(null));
            }
        }
        assertEquals(t.get("ErrorKind"), kinds);
    }

    private String file(String name) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, new byte[] {1, 2, 3});
        return p.toAbsolutePath().toString();
    }

    private static int deadPort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Test
    void itemStatesHeldReasonsAndNextAttempts() throws Exception {
        try (SyncAgent a = SyncAgent.open(dir.resolve("cloudsync.db").toString(), ROOT)) {
            a.installConfig(TestEnvelopes.loopbackConfig(CONFIG_KEY, 1, deadPort()));
            a.setAccount("alice-1001", "IN");
            long id = a.enqueue(file("one"), "backup", 0);
            ItemInfo it = a.getItem(id);
            assertEquals(ItemState.PENDING, it.getItemState());
            assertEquals(ItemInfo.STATE_PENDING, it.getState());
            assertNull(it.getItemHeldReason());
            assertNull(it.getHeldReason());
            assertTrue(it.getNextAttemptAt() >= 0, it.toString());

            a.runOnce(10_000, (RunListener) null); // nobody listens on the port: it fails
            ItemInfo failed = a.getItem(id);
            assertEquals(ItemState.FAILED, failed.getItemState(), failed.toString());
            assertEquals(ItemInfo.STATE_FAILED, failed.getState());
            assertTrue(failed.getNextAttemptAt() > System.currentTimeMillis() - 60_000, failed.toString());

            a.setAccount("bob-2002", "IN");
            a.runOnce(10_000, (RunListener) null); // alice's item is held for her
            ItemInfo held = a.getItem(id);
            assertEquals(ItemState.HELD, held.getItemState(), held.toString());
            assertEquals(ItemInfo.STATE_HELD, held.getState());
            assertEquals(HeldReason.ACCOUNT, held.getItemHeldReason());
            assertEquals(ItemInfo.HELD_ACCOUNT, held.getHeldReason());
            assertEquals(-1, held.getNextAttemptAt(), "no run attempts a held item");
        }
    }

    @Test
    void accountStates() throws Exception {
        try (SyncAgent a = SyncAgent.open(dir.resolve("cloudsync.db").toString(), ROOT)) {
            assertEquals(AccountState.NEVER_SET, a.getAccountState());
            assertFalse(a.isSignedIn());
            a.setAccount("alice-1001", "IN");
            assertEquals(AccountState.SIGNED_IN, a.getAccountState());
            assertTrue(a.isSignedIn());
            a.setAccount(null, null);
            assertEquals(AccountState.SIGNED_OUT, a.getAccountState());
            assertFalse(a.isSignedIn());
        }
    }

    @Test
    void configTimesInMillisNextToTheDeprecatedText() throws Exception {
        try (SyncAgent a = SyncAgent.open(dir.resolve("cloudsync.db").toString(), ROOT)) {
            ConfigInfo none = a.configInfo();
            assertEquals(-1, none.getExpiresAtMillis());
            assertNull(none.getExpiresAt());
            assertEquals(-1, none.getRefreshDueAtMillis(), "the root lists no sources");
            assertNull(none.getRefreshDueAt());

            a.installConfig(TestEnvelopes.twoRegionConfig(CONFIG_KEY, 1));
            ConfigInfo info = a.configInfo();
            long expires = Instant.parse(info.getExpiresAt()).toEpochMilli();
            assertEquals(expires, info.getExpiresAtMillis(), info.toString());
            long in30Days = System.currentTimeMillis() + TimeUnit.DAYS.toMillis(30);
            assertTrue(Math.abs(in30Days - expires) < TimeUnit.HOURS.toMillis(1), info.toString());
            assertEquals(-1, info.getRefreshDueAtMillis());
            assertTrue(info.toString().contains("expiresAt=" + info.getExpiresAt()), "toString as before");
            assertEquals(Arrays.asList("in", "sg"), info.getRegions());
        }
    }
}

package com.miui.cloudsync;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.HttpURLConnection;
import java.net.Proxy;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A loopback tus server over TLS (or a root's mirror) for the JVM tests, in a {@code cloudsync
 * dev-server --admin} child process and driven over its admin channel (plain HTTP with JSON on
 * 127.0.0.1, {@code crates/devserver/src/admin.rs}): the test can require and rotate a bearer
 * token, make the next request of a method fail with a status, and read every {@code
 * Authorization} header and the counters the server saw. Nothing of it is in the library under
 * test.
 *
 * <p>One {@link DevServer} per test class ({@code @BeforeAll} / {@code @AfterAll}); each test
 * starts its own servers in it (ids, ports, CAs and files of their own). Every connection and
 * read has a time limit, and so has the start of the process: a hang is a failure.
 */
final class TestServer implements AutoCloseable {
    /** Connect and read limit of one admin call. */
    private static final int CALL_TIMEOUT_MS = 10_000;

    private final DevServer owner;
    /** The server's id on its admin channel. */
    final long id;
    /** Its port on 127.0.0.1. */
    final int port;
    /** The certificate (PEM) of its own CA. */
    final byte[] caPem;
    /** A mirror's directory (with {@code root/}), served under {@code /sources/}; null for a tus server. */
    final Path mirrorDir;

    private TestServer(DevServer owner, Map<String, Object> description) {
        this.owner = owner;
        this.id = (Long) description.get("id");
        this.port = ((Long) description.get("port")).intValue();
        this.caPem = ((String) description.get("ca_pem")).getBytes(StandardCharsets.UTF_8);
        Object mirror = description.get("mirror_dir");
        this.mirrorDir = mirror == null ? null : Paths.get((String) mirror);
    }

    /** The token required from now on ({@code null}: anonymous); the old one gets 401 at once. */
    void setToken(String token) {
        owner.call("PUT", "/servers/" + id + "/token", "{\"token\": " + Json.quote(token) + "}", 204);
    }

    /** The next {@code method} request ({@code null}: any) is answered {@code status}. */
    void fail(String method, int status) {
        String body = "{\"method\": " + Json.quote(method) + ", \"status\": " + status + "}";
        owner.call("POST", "/servers/" + id + "/faults", body, 204);
    }

    /** Every {@code Authorization} value received, oldest first. */
    List<String> authorizations() {
        Map<String, Object> m = owner.call("GET", "/servers/" + id + "/authorizations", null, 200);
        List<String> out = new ArrayList<>();
        for (Object o : (List<?>) m.get("authorizations")) {
            out.add((String) o);
        }
        return Collections.unmodifiableList(out);
    }

    private long stat(String name) {
        Object v = owner.call("GET", "/servers/" + id + "/stats", null, 200).get(name);
        if (!(v instanceof Long)) {
            throw new IllegalStateException("no counter " + name + " in the stats");
        }
        return (Long) v;
    }

    /** HTTP requests read. */
    long requests() {
        return stat("requests");
    }

    /** Requests that carried an {@code Authorization} header. */
    long authorizationHeaders() {
        return stat("authorization_headers");
    }

    /** Requests answered 401. */
    long unauthorized() {
        return stat("unauthorized");
    }

    /** Uploads created by POST. */
    long uploadsCreated() {
        return stat("uploads_created");
    }

    /** Uploads whose offset reached their length. */
    long uploadsCompleted() {
        return stat("uploads_completed");
    }

    /** Request body bytes read. */
    long bodyBytes() {
        return stat("body_bytes_received");
    }

    /** Stops it (its files stay). */
    @Override
    public void close() {
        owner.call("DELETE", "/servers/" + id, null, 204);
    }

    /**
     * A {@code cloudsync dev-server --admin} child process: the binary is the system property
     * {@code cloudsync.bin}, its files go under {@code cloudsync.devserver.dir} (both set by
     * {@code scripts/test-jvm.sh}).
     */
    static final class DevServer implements AutoCloseable {
        /** How long the process may take to write its ready file. */
        private static final long START_LIMIT_NANOS = TimeUnit.SECONDS.toNanos(30);

        private final Process process;
        /** Its files: {@code log}, {@code pid}, {@code ready.json}, {@code data/}. */
        private final Path dir;
        private final String admin;

        private DevServer(Process process, Path dir, String admin) {
            this.process = process;
            this.dir = dir;
            this.admin = admin;
        }

        /** Starts one for {@code testClass} and waits (at most 30 s) until it is ready. */
        static DevServer launch(Class<?> testClass) throws IOException, InterruptedException {
            Path base = Paths.get(property("cloudsync.devserver.dir"));
            Files.createDirectories(base);
            Path dir = Files.createTempDirectory(base, testClass.getSimpleName() + "-");
            Path ready = dir.resolve("ready.json");
            Path log = dir.resolve("log");
            ProcessBuilder pb = new ProcessBuilder(property("cloudsync.bin"), "dev-server",
                    "--regions", "in", "--admin", "--dir", dir.resolve("data").toString(),
                    "--ready-file", ready.toString());
            pb.redirectErrorStream(true);
            pb.redirectOutput(log.toFile());
            pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            Process p = pb.start();
            // For scripts/test-jvm.sh to end it should this JVM die before close().
            Files.write(dir.resolve("pid"), Long.toString(p.pid()).getBytes(StandardCharsets.UTF_8));
            long started = System.nanoTime();
            // The ready file is renamed into place: once it exists, it is whole.
            while (!Files.exists(ready)) {
                if (!p.isAlive()) {
                    throw new IllegalStateException("dev-server exited (" + p.exitValue()
                            + ") before it was ready: " + readLog(log));
                }
                if (System.nanoTime() - started > START_LIMIT_NANOS) {
                    p.destroyForcibly();
                    throw new IllegalStateException("dev-server not ready after 30 s: " + readLog(log));
                }
                Thread.sleep(20);
            }
            String text = new String(Files.readAllBytes(ready), StandardCharsets.UTF_8);
            Object admin = Json.object(text).get("admin");
            if (!(admin instanceof String)) {
                p.destroyForcibly();
                throw new IllegalStateException("no admin URL in the ready file: " + text);
            }
            return new DevServer(p, dir, (String) admin);
        }

        private static String property(String name) {
            String v = System.getProperty(name);
            if (v == null || v.isEmpty()) {
                throw new IllegalStateException(
                        "system property " + name + " is not set (scripts/test-jvm.sh sets it)");
            }
            return v;
        }

        private static String readLog(Path log) {
            try {
                return new String(Files.readAllBytes(log), StandardCharsets.UTF_8);
            } catch (IOException e) {
                return "(no log: " + e + ")";
            }
        }

        /** A tus server requiring {@code Bearer <token>} ({@code null}: anonymous). */
        TestServer server(String token) {
            String body = "{\"token\": " + Json.quote(token) + "}";
            return new TestServer(this, call("POST", "/servers", body, 201));
        }

        /** A root's mirror: serves the files of its {@link TestServer#mirrorDir} (read on every request). */
        TestServer mirror() {
            return new TestServer(this, call("POST", "/servers", "{\"mirror\": true}", 201));
        }

        /**
         * {@code method path} with a JSON {@code body} (or none); fails unless answered {@code
         * expected}. The JSON object answered (empty for a 204).
         */
        Map<String, Object> call(String method, String path, String body, int expected) {
            try {
                HttpURLConnection c = (HttpURLConnection)
                        URI.create(admin + path).toURL().openConnection(Proxy.NO_PROXY);
                try {
                    c.setConnectTimeout(CALL_TIMEOUT_MS);
                    c.setReadTimeout(CALL_TIMEOUT_MS);
                    c.setUseCaches(false);
                    c.setRequestMethod(method);
                    if (body != null) {
                        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
                        c.setDoOutput(true);
                        c.setRequestProperty("Content-Type", "application/json");
                        c.setFixedLengthStreamingMode(bytes.length);
                        try (OutputStream out = c.getOutputStream()) {
                            out.write(bytes);
                        }
                    }
                    int status = c.getResponseCode();
                    InputStream in = status >= 400 ? c.getErrorStream() : c.getInputStream();
                    String text = "";
                    if (in != null) {
                        try (InputStream i = in) {
                            text = new String(i.readAllBytes(), StandardCharsets.UTF_8);
                        }
                    }
                    if (status != expected) {
                        throw new IllegalStateException(
                                method + " " + path + ": " + status + " (wanted " + expected + ") " + text);
                    }
                    return text.isEmpty() ? Collections.emptyMap() : Json.object(text);
                } finally {
                    c.disconnect();
                }
            } catch (IOException e) {
                throw new UncheckedIOException(method + " " + path + " on the admin channel", e);
            }
        }

        /** Stops the process (and every server in it); kills it if it does not exit within 10 s. */
        @Override
        public void close() {
            process.destroy();
            try {
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    if (!process.waitFor(10, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("dev-server did not exit: " + dir);
                    }
                }
                Files.deleteIfExists(dir.resolve("pid"));
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while stopping the dev-server", e);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** The JSON the admin channel speaks: objects, arrays, strings, integers, booleans, null. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) {
            this.s = s;
        }

        /** {@code v} as a JSON string, or {@code null}. */
        static String quote(String v) {
            if (v == null) {
                return "null";
            }
            StringBuilder b = new StringBuilder("\"");
            for (char ch : v.toCharArray()) {
                if (ch == '"' || ch == '\\') {
                    b.append('\\').append(ch);
                } else if (ch < 0x20) {
                    b.append(String.format("\\u%04x", (int) ch));
                } else {
                    b.append(ch);
                }
            }
            return b.append('"').toString();
        }

        /** Parses {@code text}, which must be one JSON object. */
        @SuppressWarnings("unchecked")
        static Map<String, Object> object(String text) {
            Json j = new Json(text);
            Object v = j.value();
            j.space();
            if (!(v instanceof Map) || j.i != text.length()) {
                throw new IllegalStateException("not one JSON object: " + text);
            }
            return (Map<String, Object>) v;
        }

        private void space() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        private IllegalStateException bad() {
            return new IllegalStateException("bad JSON at " + i + ": " + s);
        }

        private void expect(char c) {
            space();
            if (i >= s.length() || s.charAt(i) != c) {
                throw bad();
            }
            i++;
        }

        private Object value() {
            space();
            if (i >= s.length()) {
                throw bad();
            }
            char c = s.charAt(i);
            if (c == '{') {
                return obj();
            } else if (c == '[') {
                return array();
            } else if (c == '"') {
                return string();
            } else if (s.startsWith("null", i)) {
                i += 4;
                return null;
            } else if (s.startsWith("true", i)) {
                i += 4;
                return Boolean.TRUE;
            } else if (s.startsWith("false", i)) {
                i += 5;
                return Boolean.FALSE;
            }
            int start = i;
            while (i < s.length() && (s.charAt(i) == '-' || Character.isDigit(s.charAt(i)))) {
                i++;
            }
            try {
                return Long.parseLong(s.substring(start, i));
            } catch (NumberFormatException e) {
                throw bad();
            }
        }

        private Map<String, Object> obj() {
            Map<String, Object> m = new LinkedHashMap<>();
            expect('{');
            space();
            if (i < s.length() && s.charAt(i) == '}') {
                i++;
                return m;
            }
            do {
                space();
                String key = string();
                expect(':');
                m.put(key, value());
                space();
            } while (i < s.length() && s.charAt(i++) == ',');
            if (s.charAt(i - 1) != '}') {
                throw bad();
            }
            return m;
        }

        private List<Object> array() {
            List<Object> l = new ArrayList<>();
            expect('[');
            space();
            if (i < s.length() && s.charAt(i) == ']') {
                i++;
                return l;
            }
            do {
                l.add(value());
                space();
            } while (i < s.length() && s.charAt(i++) == ',');
            if (s.charAt(i - 1) != ']') {
                throw bad();
            }
            return l;
        }

        private String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (i < s.length()) {
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                if (i >= s.length()) {
                    break;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case 'n': b.append('\n'); break;
                    case 'r': b.append('\r'); break;
                    case 't': b.append('\t'); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'u':
                        if (i + 4 > s.length()) {
                            throw bad();
                        }
                        b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                        break;
                    default: b.append(e); // '"', '\\', '/'
                }
            }
            throw bad();
        }
    }
}

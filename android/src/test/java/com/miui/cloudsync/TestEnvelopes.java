package com.miui.cloudsync;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.security.Signature;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Arrays;
import java.util.Base64;

/**
 * An independent publisher for tests: Ed25519 keys from the JDK and DSSE v1 envelopes built by
 * hand, so the JVM tests need neither the CLI nor a JSON library, and cross-check the Rust
 * verifier against a second implementation of the envelope format.
 */
final class TestEnvelopes {
    static final String ROOT_TYPE = "application/vnd.miui.cloudsync.root+json";
    static final String CONFIG_TYPE = "application/vnd.miui.cloudsync.config+json";

    private TestEnvelopes() {}

    /** An Ed25519 key with its cloudsync keyid (hex SHA-256 of the raw public key). */
    static final class Key {
        final KeyPair pair;
        final byte[] rawPublic;
        final String keyid;

        Key() {
            try {
                pair = KeyPairGenerator.getInstance("Ed25519").generateKeyPair();
                byte[] x509 = pair.getPublic().getEncoded();
                // SubjectPublicKeyInfo for Ed25519 is a fixed 12-byte prefix plus the raw 32 bytes.
                rawPublic = Arrays.copyOfRange(x509, x509.length - 32, x509.length);
                keyid = hex(MessageDigest.getInstance("SHA-256").digest(rawPublic));
            } catch (GeneralSecurityException e) {
                throw new AssertionError(e);
            }
        }

        byte[] sign(byte[] message) {
            try {
                Signature s = Signature.getInstance("Ed25519");
                s.initSign(pair.getPrivate());
                s.update(message);
                return s.sign();
            } catch (GeneralSecurityException e) {
                throw new AssertionError(e);
            }
        }
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02x", x & 0xff));
        }
        return sb.toString();
    }

    /** DSSE pre-authentication encoding. */
    static byte[] pae(String type, byte[] payload) {
        byte[] t = type.getBytes(StandardCharsets.UTF_8);
        String head = "DSSEv1 " + t.length + " " + type + " " + payload.length + " ";
        byte[] h = head.getBytes(StandardCharsets.UTF_8);
        byte[] out = Arrays.copyOf(h, h.length + payload.length);
        System.arraycopy(payload, 0, out, h.length, payload.length);
        return out;
    }

    static byte[] envelope(String type, String payload, Key... signers) {
        byte[] p = payload.getBytes(StandardCharsets.UTF_8);
        Base64.Encoder b64 = Base64.getEncoder();
        StringBuilder sigs = new StringBuilder();
        for (Key k : signers) {
            if (sigs.length() > 0) {
                sigs.append(',');
            }
            sigs.append("{\"keyid\":\"").append(k.keyid).append("\",\"sig\":\"")
                    .append(b64.encodeToString(k.sign(pae(type, p)))).append("\"}");
        }
        String env = "{\"payloadType\":\"" + type + "\",\"payload\":\"" + b64.encodeToString(p)
                + "\",\"signatures\":[" + sigs + "]}";
        return env.getBytes(StandardCharsets.UTF_8);
    }

    /** Root version 1 with one root key and one config key, threshold 1 each. */
    static byte[] root(Key rootKey, Key configKey) {
        String payload = "{\"version\":1,\"expires_at\":\"2099-01-01T00:00:00Z\",\"keys\":{"
                + keyEntry(rootKey) + "," + keyEntry(configKey) + "},\"roles\":{"
                + "\"root\":{\"keyids\":[\"" + rootKey.keyid + "\"],\"threshold\":1},"
                + "\"config\":{\"keyids\":[\"" + configKey.keyid + "\"],\"threshold\":1}}}";
        return envelope(ROOT_TYPE, payload, rootKey);
    }

    /**
     * Root {@code version} with the same keys as {@link #root(Key, Key)} whose {@code sources} list
     * one mirror, {@code url} (an https base URL ending in {@code /}); signed by {@code rootKey},
     * so any two consecutive versions chain.
     */
    static byte[] rootWithSources(int version, Key rootKey, Key configKey, String url) {
        String payload = "{\"version\":" + version + ",\"expires_at\":\"2099-01-01T00:00:00Z\",\"keys\":{"
                + keyEntry(rootKey) + "," + keyEntry(configKey) + "},\"roles\":{"
                + "\"root\":{\"keyids\":[\"" + rootKey.keyid + "\"],\"threshold\":1},"
                + "\"config\":{\"keyids\":[\"" + configKey.keyid + "\"],\"threshold\":1}},"
                + "\"sources\":{\"urls\":[\"" + url + "\"]}}";
        return envelope(ROOT_TYPE, payload, rootKey);
    }

    private static String keyEntry(Key k) {
        return "\"" + k.keyid + "\":{\"type\":\"ed25519\",\"public\":\"" + hex(k.rawPublic) + "\"}";
    }

    /**
     * A config mapping country {@code IN} to region {@code lo}, whose backup service is {@code
     * https://127.0.0.1:<port>/files/}; issued an hour ago, valid for 30 days.
     */
    static byte[] loopbackConfig(Key configKey, int version, int port) {
        return loopbackConfig(configKey, version, port, null);
    }

    /**
     * {@link #loopbackConfig(Key, int, int)} whose backup service declares {@code "auth": auth}
     * (e.g. {@code "bearer"}; none when {@code null}).
     */
    static byte[] loopbackConfig(Key configKey, int version, int port, String auth) {
        String authField = auth == null ? "" : ",\"auth\":\"" + auth + "\"";
        // Times from the hour, not the second: a test that installs "version 1" twice (reopening
        // its database) must get the same bytes, or the second install is a rollback
        // ("already installed with different content") whenever the two straddle a second.
        Instant now = Instant.now().truncatedTo(ChronoUnit.HOURS);
        String payload = "{\"version\":" + version
                + ",\"issued_at\":\"" + now.minus(1, ChronoUnit.HOURS) + "\""
                + ",\"expires_at\":\"" + now.plus(30, ChronoUnit.DAYS) + "\""
                + ",\"countries\":{\"IN\":\"lo\"}"
                + ",\"regions\":{\"lo\":{\"services\":{\"backup\":{\"url\":\"https://127.0.0.1:" + port
                + "/files/\",\"protocol\":\"tus\"" + authField + "}},\"allowed_hosts\":[\"127.0.0.1:" + port
                + "\"]}}}";
        return envelope(CONFIG_TYPE, payload, configKey);
    }

    /**
     * A config mapping {@code IN} to region {@code in} and {@code SG} to region {@code sg}, each
     * with one backup service on a host under {@code example.net} that tests never contact (only
     * region selection and queue stamps are exercised); issued an hour ago, valid for 30 days.
     */
    static byte[] twoRegionConfig(Key configKey, int version) {
        Instant now = Instant.now().truncatedTo(ChronoUnit.HOURS);
        String payload = "{\"version\":" + version
                + ",\"issued_at\":\"" + now.minus(1, ChronoUnit.HOURS) + "\""
                + ",\"expires_at\":\"" + now.plus(30, ChronoUnit.DAYS) + "\""
                + ",\"countries\":{\"IN\":\"in\",\"SG\":\"sg\"}"
                + ",\"regions\":{" + exampleRegion("in") + "," + exampleRegion("sg") + "}}";
        return envelope(CONFIG_TYPE, payload, configKey);
    }

    private static String exampleRegion(String id) {
        String host = "backup." + id + ".example.net";
        return "\"" + id + "\":{\"services\":{\"backup\":{\"url\":\"https://" + host
                + "/files/\",\"protocol\":\"tus\"}},\"allowed_hosts\":[\"" + host + "\"]}";
    }
}

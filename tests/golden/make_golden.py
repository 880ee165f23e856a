#!/usr/bin/env python3
"""Independent golden-vector signer for cloudsync's DSSE v1 envelopes.

Deliberately NOT written in Rust and sharing no code with the crate: it builds
root and config payloads, signs them with deterministic throwaway Ed25519 keys
and writes the envelopes (plus keys.json and manifest.json) next to itself.

Needs only Python 3.11 and the `cryptography` package.
Regenerate with:  python3 tests/golden/make_golden.py
Output is byte-for-byte deterministic (fixed seeds, Ed25519 is deterministic,
sorted keys, fixed formatting).

After writing, a small independent reference verifier (bottom of this file)
replays every manifest entry and asserts the expected outcome, so the manifest
is checked rather than only hand-written.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

OUT = Path(__file__).resolve().parent

ROOT_TYPE = "application/vnd.miui.cloudsync.root+json"
CONFIG_TYPE = "application/vnd.miui.cloudsync.config+json"

# Clock at which the manifest's expectations hold (inside every "ok" window).
DEFAULT_NOW = "2026-12-01T00:00:00Z"

KEY_NAMES = ["r1", "r2", "r3", "r4", "c1", "c2", "c3", "x1"]


# ---------------------------------------------------------------- keys


def seed_for(name: str) -> bytes:
    return hashlib.sha256(b"cloudsync-golden-" + name.encode()).digest()


class Key:
    def __init__(self, name: str):
        self.name = name
        self.seed = seed_for(name)
        self.priv = Ed25519PrivateKey.from_private_bytes(self.seed)
        self.public = self.priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.keyid = hashlib.sha256(self.public).hexdigest()

    def sign(self, msg: bytes) -> bytes:
        return self.priv.sign(msg)


KEYS = {n: Key(n) for n in KEY_NAMES}


def K(*names: str) -> list[Key]:
    return [KEYS[n] for n in names]


# ---------------------------------------------------------------- DSSE


def pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 " + str(len(t)).encode() + b" " + t + b" " + str(len(body)).encode() + b" " + body


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def sig_entry(key: Key, payload_type: str, payload: bytes) -> dict:
    return {"keyid": key.keyid, "sig": b64(key.sign(pae(payload_type, payload)))}


def envelope(payload_type: str, payload: bytes, signers: list[Key]) -> dict:
    return {
        "payloadType": payload_type,
        "payload": b64(payload),
        "signatures": [sig_entry(k, payload_type, payload) for k in signers],
    }


def encode_payload(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


# ---------------------------------------------------------------- payloads


def key_entry(k: Key) -> dict:
    return {"type": "ed25519", "public": k.public.hex()}


def root_payload(version: int, root_keys: list[Key], root_thr: int,
                 config_keys: list[Key], config_thr: int) -> dict:
    keys = {k.keyid: key_entry(k) for k in root_keys + config_keys}
    return {
        "version": version,
        "expires_at": "2030-01-01T00:00:00Z",
        "keys": keys,
        "roles": {
            "root": {"keyids": [k.keyid for k in root_keys], "threshold": root_thr},
            "config": {"keyids": [k.keyid for k in config_keys], "threshold": config_thr},
        },
    }


ROOT_V1 = root_payload(1, K("r1", "r2", "r3"), 2, K("c1", "c2", "c3"), 2)
ROOT_V2 = root_payload(2, K("r2", "r3", "r4"), 2, K("c1", "c2", "c3"), 2)
ROOT_V3 = root_payload(3, K("r2", "r3", "r4"), 2, K("c1", "c2", "c3"), 2)


def region(rid: str) -> dict:
    return {
        "services": {"backup": {"url": f"https://backup.{rid}.example.net/files/", "protocol": "tus"}},
        "allowed_hosts": [f"backup.{rid}.example.net", f"*.storage.{rid}.example.net:8443"],
    }


CONFIG_V7 = {
    "version": 7,
    "issued_at": "2026-11-01T00:00:00Z",
    "expires_at": "2027-05-01T00:00:00Z",
    "countries": {"IN": "in", "BR": "br", "US": "us", "*": "sg"},
    "regions": {rid: region(rid) for rid in ["in", "br", "us", "sg"]},
}


def config_variant(**changes) -> dict:
    c = copy.deepcopy(CONFIG_V7)
    c.update(changes)
    return c


def config_v11() -> dict:
    """Base for the single-defect v11 configs: valid on its own."""
    return config_variant(version=11, issued_at="2026-11-20T00:00:00Z", expires_at="2027-05-01T00:00:00Z")


def config_v11_url(url: str) -> dict:
    c = config_v11()
    c["regions"]["in"]["services"]["backup"]["url"] = url
    return c


# ---------------------------------------------------------------- build all files

FILES: dict[str, bytes] = {}  # file name -> exact bytes
MANIFEST: list[dict] = []


def dump(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def add(name: str, env_or_bytes, *, install_as: str, expect: str, note: str,
        requires: list[str] | None = None, now: str = DEFAULT_NOW, manifest: bool = True):
    if name not in FILES:
        FILES[name] = env_or_bytes if isinstance(env_or_bytes, bytes) else dump(env_or_bytes)
    if manifest:
        MANIFEST.append({
            "file": name,
            "install_as": install_as,
            "requires": ["root_v1.json"] if requires is None else requires,
            "now": now,
            "expect": expect,
            "note": note,
        })


def build():
    # keys.json
    FILES["keys.json"] = dump({
        k.name: {"seed_hex": k.seed.hex(), "public_hex": k.public.hex(), "keyid": k.keyid}
        for k in KEYS.values()
    })

    root_v1_p = encode_payload(ROOT_V1)
    root_v2_p = encode_payload(ROOT_V2)

    # ---- roots
    add("root_v1.json", envelope(ROOT_TYPE, root_v1_p, K("r1", "r2")),
        install_as="root", requires=[], expect="ok",
        note="trust anchor: root v1 (root r1,r2,r3 thr 2; config c1,c2,c3 thr 2) signed r1,r2; bootstrap into an empty store")
    add("root_v2_good.json", envelope(ROOT_TYPE, root_v2_p, K("r1", "r2", "r4", "r3")),
        install_as="root", expect="ok",
        note="root v2 (root r2,r3,r4 thr 2) signed r1,r2,r4,r3: meets v1 threshold (r1,r2,r3) and v2 threshold (r2,r3,r4)")
    add("root_v2_old_only.json", envelope(ROOT_TYPE, root_v2_p, K("r1", "r2")),
        install_as="root", expect="threshold_not_met",
        note="signed r1,r2: old (v1) threshold met, new (v2) threshold only 1 of 2 (r2)")
    add("root_v2_new_only.json", envelope(ROOT_TYPE, root_v2_p, K("r4", "r3")),
        install_as="root", expect="threshold_not_met",
        note="signed r4,r3: new (v2) threshold met, old (v1) threshold only 1 of 2 (r3)")
    add("root_v3_skip.json", envelope(ROOT_TYPE, encode_payload(ROOT_V3), K("r1", "r2", "r3", "r4")),
        install_as="root", expect="version_gap",
        note="root version 3 while v1 is current: root versions must step by exactly one (cloudsync's own kind: version_gap)")
    bad_thr = copy.deepcopy(ROOT_V2)
    bad_thr["roles"]["config"]["threshold"] = 0
    add("root_bad_threshold.json", envelope(ROOT_TYPE, encode_payload(bad_thr), K("r1", "r2", "r3", "r4")),
        install_as="root", expect="malformed",
        note="root v2 with config threshold 0 (thresholds must be >= 1); signatures valid for v1 and v2")
    unreach = copy.deepcopy(ROOT_V2)
    unreach["roles"]["config"]["threshold"] = 5
    add("root_unreachable_threshold.json", envelope(ROOT_TYPE, encode_payload(unreach), K("r1", "r2", "r3", "r4")),
        install_as="root", expect="malformed",
        note="root v2 with config threshold 5 but only 3 keyids (unreachable); signatures valid for v1 and v2")

    # ---- config v7 and signature / threshold variants
    v7 = encode_payload(CONFIG_V7)
    v7_env = envelope(CONFIG_TYPE, v7, K("c1", "c2"))
    add("config_v7.json", v7_env, install_as="config", expect="ok",
        note="config v7 (IN->in, BR->br, US->us, *->sg) signed c1,c2")
    add("config_v7_one_sig.json", envelope(CONFIG_TYPE, v7, K("c1")),
        install_as="config", expect="threshold_not_met", note="signed c1 only (1 of 2)")
    dup = envelope(CONFIG_TYPE, v7, K("c1", "c1"))
    add("config_v7_dup_signer.json", dup, install_as="config", expect="threshold_not_met",
        note="c1's signature listed twice: a key counts once (1 of 2)")
    add("config_v7_root_keys.json", envelope(CONFIG_TYPE, v7, K("r1", "r2")),
        install_as="config", expect="bad_signature",
        note="signed r1,r2: root keys are not config-role keys, so zero valid config-role signatures")
    add("config_v7_unknown_plus_one.json", envelope(CONFIG_TYPE, v7, K("x1", "c1")),
        install_as="config", expect="threshold_not_met",
        note="signed x1 (unknown key, ignored) and c1 (1 of 2)")

    tampered_payload = encode_payload(config_variant(version=8))
    diff = [i for i, (a, b) in enumerate(zip(v7, tampered_payload)) if a != b]
    assert len(v7) == len(tampered_payload) and len(diff) == 1, diff
    tampered = dict(v7_env, payload=b64(tampered_payload))
    add("config_v7_tampered.json", tampered, install_as="config", expect="bad_signature",
        note="v7 payload with one byte changed (version 7->8), v7 signatures kept: zero valid signatures")

    badsig = copy.deepcopy(v7_env)
    raw = bytearray(base64.b64decode(badsig["signatures"][1]["sig"]))
    raw[0] ^= 0x01
    badsig["signatures"][1]["sig"] = b64(bytes(raw))
    add("config_v7_badsig.json", badsig, install_as="config", expect="threshold_not_met",
        note="c1 valid, c2's signature has one flipped bit (doesn't count): 1 of 2")

    swap = envelope(ROOT_TYPE, v7, K("c1", "c2", "r1", "r2"))
    add("config_v7_type_swap.json", swap, install_as="config", expect="wrong_payload_type",
        note="config v7 payload under the ROOT payloadType, validly signed over that (type, payload) by c1,c2,r1,r2")
    add("config_v7_type_swap.json", swap, install_as="root", expect="malformed",
        note="same file installed as a root: type and r1,r2 signatures fine, but the payload is a config, not a root schema")
    add("config_v7_type_unknown.json", envelope("application/json", v7, K("c1", "c2")),
        install_as="config", expect="wrong_payload_type", note="payloadType application/json, signed c1,c2")

    same_diff = config_variant()
    same_diff["countries"]["US"] = "sg"
    add("config_v7_same_version_diff.json", envelope(CONFIG_TYPE, encode_payload(same_diff), K("c1", "c2")),
        install_as="config", requires=["root_v1.json", "config_v7.json"], expect="rollback",
        note="version 7 again with different content (US->sg) while v7 is installed")
    add("config_v6.json",
        envelope(CONFIG_TYPE, encode_payload(config_variant(version=6, issued_at="2026-10-01T00:00:00Z")), K("c1", "c2")),
        install_as="config", requires=["root_v1.json", "config_v7.json"], expect="rollback",
        note="version 6 (issued 2026-10-01) while v7 is installed")
    add("config_v8.json",
        envelope(CONFIG_TYPE, encode_payload(config_variant(
            version=8, issued_at="2026-11-15T00:00:00Z", expires_at="2027-06-01T00:00:00Z")), K("c1", "c2")),
        install_as="config", requires=["root_v1.json", "config_v7.json"], expect="ok",
        note="version 8 upgrade over v7")
    add("config_expired.json",
        envelope(CONFIG_TYPE, encode_payload(config_variant(
            version=9, issued_at="2020-01-01T00:00:00Z", expires_at="2020-02-01T00:00:00Z")), K("c1", "c2")),
        install_as="config", expect="expired", note="version 9, expired 2020-02-01")
    add("config_future_issued.json",
        envelope(CONFIG_TYPE, encode_payload(config_variant(
            version=10, issued_at="2099-01-01T00:00:00Z", expires_at="2099-06-01T00:00:00Z")), K("c1", "c2")),
        install_as="config", expect="ok",
        note="version 10 issued 2099-01-01, expires 2099-06-01 (clock-freeze tests). Nothing in the spec rejects a future "
             "issued_at, so at the default clock it installs; afterwards an issued_at-based clock floor would sit at 2099-01-01, "
             "past root v1's 2030 expiry")

    # ---- v11 single-defect configs (endpoint / schema)
    def v11(name, cfg, expect, note):
        add(name, envelope(CONFIG_TYPE, encode_payload(cfg), K("c1", "c2")),
            install_as="config", expect=expect, note="version 11: " + note)

    v11("config_bad_http.json", config_v11_url("http://backup.in.example.net/files/"),
        "invalid_endpoint", "region in backup url is http://, not https")
    v11("config_bad_userinfo.json", config_v11_url("https://user:pw@backup.in.example.net/files/"),
        "invalid_endpoint", "url carries userinfo user:pw@")
    v11("config_bad_host.json", config_v11_url("https://evil.example.com/files/"),
        "invalid_endpoint", "host evil.example.com not in region in's allowed_hosts")
    v11("config_bad_port.json", config_v11_url("https://backup.in.example.net:8443/files/"),
        "invalid_endpoint", "allowed_hosts entry backup.in.example.net has no port, so only 443 is allowed; url uses 8443")
    v11("config_bad_apex.json", config_v11_url("https://storage.in.example.net:8443/files/"),
        "invalid_endpoint", "*.storage.in.example.net:8443 never matches the apex storage.in.example.net")
    v11("config_good_wildcard.json", config_v11_url("https://eu1.storage.in.example.net:8443/files/"),
        "ok", "eu1.storage.in.example.net:8443 matches *.storage.in.example.net:8443")

    c = config_v11()
    c["countries"] = {"in": "in", "BR": "br", "US": "us", "*": "sg"}
    v11("config_bad_country_case.json", c, "malformed",
        "countries key 'in' is lower case (IN replaced by in; the rest unchanged)")
    c = config_v11()
    c["countries"] = {"IN": "xx", "BR": "br", "US": "us", "*": "sg"}
    v11("config_bad_region_ref.json", c, "malformed",
        "countries IN -> xx but no region xx exists (the rest unchanged)")
    c = config_v11()
    del c["expires_at"]
    v11("config_missing_field.json", c, "malformed", "required field expires_at missing")
    c = config_v11()
    c["future_field"] = {"a": 1}
    c["regions"]["br"]["future_region_field"] = {"b": [1, 2]}
    v11("config_unknown_fields.json", c, "ok",
        "unknown top-level future_field and unknown regions.br.future_region_field must be ignored")

    # ---- not-an-envelope inputs
    add("garbage.json", b"not json at all \x00\xff", install_as="config", expect="malformed",
        note="raw bytes 'not json at all \\x00\\xff' (also malformed as a root)")
    add("empty.json", b"", install_as="config", expect="malformed", note="zero bytes (also malformed as a root)")
    bad64 = copy.deepcopy(v7_env)
    bad64["payload"] = "%%% not base64 %%%"
    add("envelope_bad_base64.json", bad64, install_as="config", expect="malformed",
        note="payload is not valid base64 (signatures are config_v7's)")

    FILES["manifest.json"] = dump(MANIFEST)


# ---------------------------------------------------------------- reference verifier (self-check)


class Reject(Exception):
    def __init__(self, kind: str, why: str):
        super().__init__(f"{kind}: {why}")
        self.kind = kind


def ts(s) -> datetime:
    if not isinstance(s, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s):
        raise Reject("malformed", f"bad timestamp {s!r}")
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def parse_envelope(data: bytes):
    try:
        env = json.loads(data.decode("utf-8"))
        pt, p64, sigs = env["payloadType"], env["payload"], env["signatures"]
        assert isinstance(pt, str) and isinstance(p64, str) and isinstance(sigs, list)
        payload = base64.b64decode(p64, validate=True)
        out = []
        for s in sigs:
            assert isinstance(s["keyid"], str)
            out.append((s["keyid"], base64.b64decode(s["sig"], validate=True)))
        return pt, payload, out
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError, binascii.Error) as e:
        raise Reject("malformed", f"envelope: {e!r}")


def count_valid(root: dict, role: str, pt: str, payload: bytes, sigs) -> tuple[int, int]:
    r = root["roles"][role]
    msg = pae(pt, payload)
    good = set()
    for keyid, sig in sigs:
        if keyid not in r["keyids"] or keyid in good:
            continue
        pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(root["keys"][keyid]["public"]))
        try:
            pub.verify(sig, msg)
            good.add(keyid)
        except InvalidSignature:
            pass
    return len(good), r["threshold"]


def check_threshold(n: int, thr: int, who: str):
    if n == 0:
        raise Reject("bad_signature", f"{who}: no valid signature")
    if n < thr:
        raise Reject("threshold_not_met", f"{who}: {n} < {thr}")


def parse_root(payload: bytes) -> dict:
    try:
        r = json.loads(payload)
        assert isinstance(r["version"], int) and r["version"] >= 1
        ts(r["expires_at"])
        for kid, k in r["keys"].items():
            assert k["type"] == "ed25519" and re.fullmatch(r"[0-9a-f]{64}", k["public"])
            assert hashlib.sha256(bytes.fromhex(k["public"])).hexdigest() == kid
        for role in ("root", "config"):
            ro = r["roles"][role]
            ids, thr = ro["keyids"], ro["threshold"]
            assert all(i in r["keys"] for i in ids) and len(set(ids)) == len(ids)
            assert isinstance(thr, int) and 1 <= thr <= len(ids)
        return r
    except Reject:
        raise
    except (ValueError, KeyError, TypeError, AssertionError, AttributeError) as e:
        raise Reject("malformed", f"root payload: {e!r}")


def host_allowed(host: str, port: int, allowed: list[str]) -> bool:
    for entry in allowed:
        h, _, p = entry.partition(":")
        if (int(p) if p else 443) != port:
            continue
        if h.startswith("*."):
            suffix = h[1:]  # ".storage.in.example.net"
            if host.endswith(suffix) and len(host) > len(suffix) and "." not in host[: -len(suffix)]:
                return True
        elif host == h:
            return True
    return False


def parse_config(payload: bytes) -> dict:
    try:
        c = json.loads(payload)
        assert isinstance(c["version"], int) and c["version"] >= 1
        ts(c["issued_at"]), ts(c["expires_at"])
        regions = c["regions"]
        for rid, reg in regions.items():
            assert isinstance(reg["allowed_hosts"], list)
            for svc in reg["services"].values():
                assert isinstance(svc["url"], str) and isinstance(svc["protocol"], str)
        for cc, rid in c["countries"].items():
            assert cc == "*" or re.fullmatch(r"[A-Z]{2}", cc), f"country {cc!r}"
            assert rid in regions, f"region {rid!r}"
    except Reject:
        raise
    except (ValueError, KeyError, TypeError, AssertionError, AttributeError) as e:
        raise Reject("malformed", f"config payload: {e!r}")
    for reg in regions.values():
        for svc in reg["services"].values():
            m = re.fullmatch(r"([a-z]+)://([^/?#]*)(/[^?#]*)?", svc["url"])
            if not m or m.group(1) != "https":
                raise Reject("invalid_endpoint", f"not https: {svc['url']}")
            auth = m.group(2)
            if "@" in auth:
                raise Reject("invalid_endpoint", f"userinfo: {svc['url']}")
            host, _, port = auth.partition(":")
            if not host_allowed(host, int(port) if port else 443, reg["allowed_hosts"]):
                raise Reject("invalid_endpoint", f"host not allowed: {svc['url']}")
    return c


class Store:
    def __init__(self):
        self.root: dict | None = None
        self.config: tuple[dict, bytes] | None = None

    def install(self, data: bytes, install_as: str, now: datetime):
        pt, payload, sigs = parse_envelope(data)
        want = ROOT_TYPE if install_as == "root" else CONFIG_TYPE
        if pt != want:
            raise Reject("wrong_payload_type", pt)
        if install_as == "root":
            new = parse_root(payload)
            if self.root is None:  # bootstrap: self-signed to its own threshold
                check_threshold(*count_valid(new, "root", pt, payload, sigs), "self")
            else:
                check_threshold(*count_valid(self.root, "root", pt, payload, sigs), "old root")
                check_threshold(*count_valid(new, "root", pt, payload, sigs), "new root")
                if new["version"] <= self.root["version"]:
                    raise Reject("rollback", f"root version {new['version']} after {self.root['version']}")
                if new["version"] != self.root["version"] + 1:
                    raise Reject("version_gap", f"root version {new['version']} after {self.root['version']}")
            if ts(new["expires_at"]) <= now:
                raise Reject("expired", "root")
            self.root = new
        else:
            assert self.root is not None
            if ts(self.root["expires_at"]) <= now:
                raise Reject("expired", "root")
            check_threshold(*count_valid(self.root, "config", pt, payload, sigs), "config")
            cfg = parse_config(payload)
            if self.config is not None:
                cur, cur_bytes = self.config
                if cfg["version"] < cur["version"] or (cfg["version"] == cur["version"] and payload != cur_bytes):
                    raise Reject("rollback", f"config version {cfg['version']} vs {cur['version']}")
            if ts(cfg["expires_at"]) <= now:
                raise Reject("expired", "config")
            self.config = (cfg, payload)


def self_check():
    fails = 0
    for e in MANIFEST:
        now = ts(e["now"])
        st = Store()
        for req in e["requires"]:
            st.install(FILES[req], "root" if req.startswith("root") else "config", now)
        try:
            st.install(FILES[e["file"]], e["install_as"], now)
            got, why = "ok", ""
        except Reject as r:
            got, why = r.kind, str(r)
        if got != e["expect"]:
            fails += 1
            print(f"SELF-CHECK MISMATCH {e['file']} as {e['install_as']}: expected {e['expect']}, got {got} ({why})")
    if fails:
        sys.exit(1)
    print(f"self-check: {len(MANIFEST)} manifest entries agree with the reference verifier")


def main():
    build()
    for name, data in sorted(FILES.items()):
        (OUT / name).write_bytes(data)
    print(f"wrote {len(FILES)} files to {OUT}")
    self_check()


if __name__ == "__main__":
    main()

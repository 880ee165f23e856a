#!/usr/bin/env python3
"""Cross-check the golden envelopes with a third-party DSSE implementation.

Uses securesystemslib's own `dsse.Envelope` (its PAE) and `SSlibKey`
(keyid forced to our keyid = sha256 of the raw public key), sharing no code
with make_golden.py or the crate.

    pip install cryptography securesystemslib
    python3 tests/golden/check_with_securesystemslib.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

HERE = Path(__file__).resolve().parent
KEYS = json.loads((HERE / "keys.json").read_text())
FAILED = []


def key(name: str) -> SSlibKey:
    k = KEYS[name]
    return SSlibKey(k["keyid"], "ed25519", "ed25519", {"public": k["public_hex"]})


def load(name: str) -> Envelope:
    return Envelope.from_dict(json.loads((HERE / name).read_text()))


def check(label: str, cond: bool):
    print(("PASS " if cond else "FAIL ") + label)
    if not cond:
        FAILED.append(label)


def verifies(env: Envelope, names: list[str], threshold: int) -> bool:
    try:
        env.verify([key(n) for n in names], threshold)
        return True
    except VerificationError:
        return False


def main():
    v7 = load("config_v7.json")
    check("config_v7.json verifies with c1,c2,c3 threshold 2",
          set(v7.verify([key(n) for n in ("c1", "c2", "c3")], 2)) == {KEYS["c1"]["keyid"], KEYS["c2"]["keyid"]})
    check("root_v1.json verifies with r1,r2,r3 threshold 2", verifies(load("root_v1.json"), ["r1", "r2", "r3"], 2))
    check("root_v2_good.json verifies with v1 root keys r1,r2,r3 threshold 2",
          verifies(load("root_v2_good.json"), ["r1", "r2", "r3"], 2))
    check("root_v2_good.json verifies with v2 root keys r2,r3,r4 threshold 2",
          verifies(load("root_v2_good.json"), ["r2", "r3", "r4"], 2))
    check("config_v7_type_swap.json (root type) verifies with c1,c2 over its own type",
          verifies(load("config_v7_type_swap.json"), ["c1", "c2", "c3"], 2))

    # Negative cases must fail under the third-party verifier too.
    check("config_v7_one_sig.json fails threshold 2", not verifies(load("config_v7_one_sig.json"), ["c1", "c2", "c3"], 2))
    check("config_v7_tampered.json fails even threshold 1",
          not verifies(load("config_v7_tampered.json"), ["c1", "c2", "c3"], 1))
    check("config_v7_badsig.json fails threshold 2 (c2 bit flipped)",
          not verifies(load("config_v7_badsig.json"), ["c1", "c2", "c3"], 2))
    check("config_v7_badsig.json passes threshold 1 (c1 still valid)",
          verifies(load("config_v7_badsig.json"), ["c1", "c2", "c3"], 1))
    check("config_v7_root_keys.json fails with config keys",
          not verifies(load("config_v7_root_keys.json"), ["c1", "c2", "c3"], 1))

    # Re-sign config v7 with securesystemslib's signer: Ed25519 is deterministic,
    # so the third-party PAE must yield byte-identical signatures.
    raw = json.loads((HERE / "config_v7.json").read_text())
    fresh = Envelope(v7.payload, v7.payload_type, {})
    for n in ("c1", "c2"):
        priv = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[n]["seed_hex"]))
        fresh.sign(CryptoSigner(priv, key(n)))
    check("securesystemslib re-sign of config_v7 gives identical envelope dict", fresh.to_dict() == raw)

    if FAILED:
        print(f"{len(FAILED)} check(s) failed")
        sys.exit(1)
    print("all securesystemslib cross-checks passed")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The one test command (README): installs what the suites need, idempotently,
# then runs every suite: Rust unit + integration (loopback TLS tus servers,
# golden envelopes, CLI, crash/kill tests, C ABI, Node @tus/server interop)
# and the host-JVM JNI tests. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

need=(faketime sqlite3 junit5 gcc curl)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v node >/dev/null || { echo "node is required (Node >= 20.19, tests/interop/package.json) for the tus interop test" >&2; exit 1; }
if [ -f tests/interop/package.json ] && [ ! -d tests/interop/node_modules ]; then
  echo "== npm packages for the interop test"
  (cd tests/interop && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi)
fi

echo "== Rust: unit, integration, C ABI, interop"
cargo test --features ffi-test-hooks

if [ -x scripts/test-jvm.sh ]; then
  echo "== JVM: JNI host tests"
  scripts/test-jvm.sh
fi
echo "== all tests passed"

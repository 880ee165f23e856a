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

# How long each part took, printed at the end (and as it goes).
timings=()
part() {
  local name=$1; shift
  echo "== $name"
  local t0; t0=$(date +%s)
  "$@"
  timings+=("$(printf '%5ss  %s' "$(( $(date +%s) - t0 ))" "$name")")
  echo "== $name: $(( $(date +%s) - t0 ))s"
}

# Every crate of the workspace: the library's unit tests and its integration
# test binaries (tests/{agent,ffi,queue,trust,upload}), the dev server's unit
# tests, the CLI's (crates/cli/tests/{cli,processes}: real processes, the C
# ABI), with the library's test hooks on. Built first, then run, so the two
# parts are timed apart.
FEATURES=cloudsync/ffi-test-hooks,cloudsync-cli/ffi-test-hooks
part "Rust: build the tests" cargo test --workspace --features "$FEATURES" --no-run
part "Rust: unit, integration, C ABI, interop" cargo test --workspace --features "$FEATURES"

if [ -x scripts/test-jvm.sh ]; then
  part "JVM: JNI host tests" scripts/test-jvm.sh
fi
echo "== time per part"
printf '%s\n' "${timings[@]}"
echo "== all tests passed"

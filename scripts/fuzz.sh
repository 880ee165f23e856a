#!/usr/bin/env bash
# Fuzzes one target (or all) with libFuzzer through cargo-fuzz, on the stable
# toolchain, for a number of seconds each (default 60).
#
#   scripts/fuzz.sh [envelope|config_payload|host_rules|all] [seconds]
#
# Installs cargo-fuzz (pinned) once. The targets' bodies are in
# fuzz/src/lib.rs; the committed seeds in fuzz/corpus/<target>/, the inputs
# libFuzzer adds in target/fuzz-corpus/<target>/. A crasher goes to
# fuzz/artifacts/<target>/; once fixed, commit it to fuzz/corpus/<target>/,
# where `cargo test -p cloudsync-fuzz` (CI) replays it.
#
# Sanitizer: none by default on stable (`-s none`: coverage-guided, panics
# and aborts are caught; the library has no unsafe outside the FFI shell,
# which these targets do not enter). FUZZ_ASAN=1 adds AddressSanitizer, which
# needs `-Zsanitizer` and so RUSTC_BOOTSTRAP=1 on stable.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-all}
secs=${2:-60}
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
sanitizer=(-s none)
if [ "${FUZZ_ASAN:-}" = 1 ]; then
  sanitizer=(-s address)
  export RUSTC_BOOTSTRAP=1
fi
# The workspace's release profile is for shipping (fat LTO, one codegen
# unit, stripped); with LTO the coverage instrumentation of the library's
# crates is lost (libFuzzer saw ~60 edges instead of thousands).
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_STRIP=none
targets=("$target")
[ "$target" = all ] && targets=(envelope config_payload host_rules)
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${secs}s"
  # New inputs go to a working corpus under target/; the committed seeds
  # are read, never written (copy an input worth keeping by hand).
  mkdir -p "target/fuzz-corpus/$t"
  cargo fuzz run "${sanitizer[@]}" --features libfuzzer "$t" "target/fuzz-corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048
done

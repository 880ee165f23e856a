#!/usr/bin/env bash
# "Runs on ARM": cross-build cloudsync for aarch64-unknown-linux-gnu and run its
# Rust tests (unit + integration) under qemu-aarch64 user-mode emulation.
#
# Uses only Debian packages:
# Debian's Rust 1.96 (rustc-web/cargo-web) with its multiarch arm64 std, the
# aarch64 GNU cross compiler (ring's asm, bundled SQLite) and qemu-user.
# Idempotent; run as root (CI is root). Installs what it needs.
#
# What runs (the library's test hooks on, as on the host), in the library, the
# dev server and the CLI crates:
#   - the unit tests of the library, the dev server and the CLI;
#   - every integration test binary (tests/*/ and crates/cli/tests/*/) except
#     the modules listed in EXCLUDE below, including cli/ (the aarch64
#     `cloudsync` binary), processes/kill_run.rs and queue/crash.rs (child
#     processes, SIGKILL), upload/ (loopback TLS tus servers) and queue/.
# What does not:
#   - processes/c_abi.rs: compiles tests/c/test_capi.c with the host (x86_64) gcc
#     and links it to the .so of the same build, which here is aarch64; the C
#     ABI is covered by scripts/test.sh on the host;
#   - processes/c_runner_lock.rs: like c_abi, a C program built with the host gcc
#     against the .so (aarch64 here); covered on the host;
#   - processes/c_abuse.rs: like c_abi, and built with the host's ASan/UBSan
#     runtime (x86_64); covered on the host;
#   - processes/power_cut.rs: its fsync recorder is an x86_64 LD_PRELOAD library
#     (tests/c/powercut_shim.c, host cc), which cannot be preloaded into an
#     emulated aarch64 process; covered on the host;
#   - processes/queue_contention.rs: it asserts that runs return within their
#     deadline plus a bound while another process holds the write lock, and
#     builds a C program with the host gcc; under qemu on 2 busy cores the
#     bounds measure the emulator (as for net_faults below); host only;
#   - upload/interop_tus_node.rs: needs node/npm (x86_64 node, not for aarch64);
#   - processes/net_faults.rs: it asserts wall-clock bounds of ±0.7 s on each
#     timeout (connect, handshake, io, request, run deadline, cancel). Under
#     qemu's emulation on 2 busy cores those bounds measure the emulator's
#     scheduling, not the pacing code (plain std sockets and timers, the same
#     code the host run checks): a CI run with other builds going gave up
#     2.3 s after a 1 s io_timeout and exited a 3 s run at 4.24 s;
#   - cli::clock_moves_under_faketime and
#     trust_processes::clock_set_back_under_faketime_stays_expired: libfaketime is an x86_64 LD_PRELOAD
#     library; it cannot move the clock of an emulated aarch64 process (qemu
#     passes clock syscalls straight to the host kernel);
#   - doctests and the JVM tests (scripts/test-jvm.sh) run on the host only.
# Wall time on the 2-core CI machine: ~1.5 min build (from scratch) + ~1.5 min
# of tests (kill_run ~40 s and queue_crash ~20 s are the long ones).
#
# Child processes: the tests spawn the aarch64 `cloudsync` binary and
# re-execute themselves (`current_exe()`). Under plain qemu-user an execve of an
# aarch64 ELF fails ("Exec format error") unless the kernel knows to hand it to
# qemu-aarch64, so this script registers qemu-aarch64 with binfmt_misc if no
# handler is registered yet (the runner itself stays plain `qemu-aarch64`).
#
# usage: scripts/cross-aarch64-test.sh [extra `cargo test` args, e.g. --no-run, or -- --nocapture]
# env:   CARGO_TARGET_DIR (default target/aarch64-qemu)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

# Test modules left out under qemu (matched as `<module>::` in the test names
# of the grouped binaries), and single tests skipped.
EXCLUDE=(c_abi c_abuse c_runner_lock power_cut queue_contention interop_tus_node net_faults)
SKIP=(clock_moves_under_faketime clock_set_back_under_faketime_stays_expired)
PACKAGES=(-p cloudsync -p cloudsync-devserver -p cloudsync-cli)
FEATURES=cloudsync/ffi-test-hooks

export DEBIAN_FRONTEND=noninteractive
need=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user rustc-web cargo-web libstd-rust-web-dev:arm64)
if ! dpkg -s "${need[@]}" >/dev/null 2>&1; then
  echo "== installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# binfmt_misc: let aarch64 children (the CLI, the crash-test re-exec) run too.
bm=/proc/sys/fs/binfmt_misc
if [ ! -e "$bm/register" ]; then
  mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null || true
fi
if [ -e "$bm/qemu-aarch64" ] && [ "$(head -n1 "$bm/qemu-aarch64")" = disabled ]; then
  echo 1 > "$bm/qemu-aarch64" || true
fi
if [ -e "$bm/register" ] && ! grep -qs '^interpreter .*qemu-aarch64' "$bm"/* 2>/dev/null; then
  # Magic and mask from qemu's scripts/qemu-binfmt-conf.sh (EM_AARCH64 ELF64 executables).
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64:' \
    > "$bm/register" || echo "warning: could not register qemu-aarch64 with binfmt_misc; tests that spawn children will fail" >&2
fi

# Debian's compiler, not rustup's proxies (rustup's toolchain has no aarch64 std,
# and cannot use Debian's 1.96 one).
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
unset RUSTUP_TOOLCHAIN
test -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib || { echo "arm64 std missing" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/aarch64-qemu}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# Plain qemu-aarch64, NOT `qemu-aarch64 -L /usr/aarch64-linux-gnu`: that loads the
# cross ld.so next to the multiarch libc.so.6 (different builds) and
# pthread_create hangs forever.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Backtraces keep file:line, but without full debug info the cross build is ~25% faster.
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}

# --tests: every unit test (libraries and binaries) and integration test binary.
sel=(--tests)
skips=()
for m in "${EXCLUDE[@]}"; do skips+=(--skip "$m::"); done
for s in "${SKIP[@]}"; do skips+=(--skip "$s"); done

/usr/bin/rustc --version
echo "== cargo test --target aarch64-unknown-linux-gnu ${sel[*]} (excluded: ${EXCLUDE[*]}; skipped: ${SKIP[*]})"
args=("$@")
if [[ " ${args[*]-} " == *" -- "* ]]; then args+=("${skips[@]}"); else args+=(-- "${skips[@]}"); fi
/usr/bin/cargo test --target aarch64-unknown-linux-gnu "${PACKAGES[@]}" --features "$FEATURES" \
  "${sel[@]}" "${args[@]}"
echo "== aarch64 tests passed under qemu in $(( $(date +%s) - start ))s"

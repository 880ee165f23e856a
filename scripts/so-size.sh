#!/usr/bin/env bash
# The phone library as built: builds libcloudsync.so for aarch64 with the
# `phone` profile, linked by lld (the NDK's only linker since r22) with the
# Android page alignment (16 KiB) and packed relocations
# (`--pack-dyn-relocs=android`, what build.rs picks for the app's minSdk 24),
# both of which build.rs adds for Android targets and are given here through
# RUSTFLAGS because the stand-in is a Linux target, as a stand-in for the NDK
# build (no NDK here), and checks it with readelf / nm:
#   - the 3 MiB size budget (and prints the headroom: 3,008,616 bytes at issue
#     23, 137,112 B = 133.9 KiB of headroom; BENCHMARKS.md "Library size",
#     and scripts/so-bloat.sh for what each part costs);
#   - the relocations packed (no plain .rela.dyn of thousands of entries);
#   - no undefined symbol other than the C library's (versioned) ones: a
#     SQLITE_OMIT_* option that the amalgamation does not support leaves the
#     parser calling functions that are no longer there, and a shared library
#     links anyway and fails only when it is loaded;
#   - every LOAD segment aligned to 16 KiB (0x4000);
#   - SONAME libcloudsync.so (set by build.rs for Linux and Android targets);
#   - no test hook among the exported symbols (*ForTest, NativeBridge_test*,
#     cs_test_*: they exist only with the ffi-test-hooks feature).
# Needs the aarch64 toolchain that scripts/cross-aarch64-test.sh installs, and
# Debian's lld and clang (installed here if missing; scripts/android-check.sh installs them too).
# usage: scripts/so-size.sh   (prints what it checked; exit 1 on any failure)
# The C (SQLite, ring) is compiled by clang, as the NDK compiles it: clang's
# code for SQLite differs in size from gcc's by tens of KB (BENCHMARKS.md, "gcc
# stand-in vs the NDK's clang"), so the budget is checked on what the NDK's
# compiler makes. SO_CC=aarch64-linux-gnu-gcc builds the C with gcc instead
# (use its own CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
unset RUSTUP_TOOLCHAIN
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu="${SO_CC:-clang --target=aarch64-linux-gnu}" AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/aarch64-phone}
need=()
command -v ld.lld >/dev/null || need+=(lld)
command -v clang >/dev/null || need+=(clang)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# gcc's -fuse-ld=lld looks for `ld.lld` in its -B directories (a cross gcc does
# not take the unprefixed one from PATH).
lld_dir=$CARGO_TARGET_DIR/lld-bin
mkdir -p "$lld_dir" && ln -sf "$(command -v ld.lld)" "$lld_dir/ld.lld"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-B$lld_dir -C link-arg=-fuse-ld=lld -C link-arg=-Wl,-z,max-page-size=16384 -C link-arg=-Wl,--pack-dyn-relocs=android"
/usr/bin/cargo build -q --target aarch64-unknown-linux-gnu -p cloudsync --lib --profile phone
so=$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/phone/libcloudsync.so
bytes=$(stat -c %s "$so")
budget=$((3 * 1024 * 1024))
fail=0
echo "libcloudsync.so (aarch64, --profile phone, 16 KiB pages): $bytes bytes, budget $budget"
headroom=$((budget - bytes))
echo "headroom $headroom bytes ($(awk -v h="$headroom" 'BEGIN { printf "%.1f", h / 1024 }') KiB; issue 23 asks for >= 128 KiB = 131072 bytes)"
if aarch64-linux-gnu-readelf -lW "$so" | awk '$1 == "LOAD" && $NF != "0x4000" { bad = 1 } END { exit bad }'; then
  echo "LOAD segments aligned to 16 KiB"
else
  echo "a LOAD segment is not 16 KiB aligned" >&2; fail=1
fi
if aarch64-linux-gnu-readelf -dW "$so" | grep -q 'SONAME.*\[libcloudsync\.so\]'; then
  echo "SONAME libcloudsync.so"
else
  echo "no SONAME libcloudsync.so:" >&2; aarch64-linux-gnu-readelf -dW "$so" | grep -i soname >&2 || true; fail=1
fi
# Unpacked, .rela.dyn holds ~4,400 relative relocations of 24 bytes each (106 KB).
rela=$(aarch64-linux-gnu-size -A "$so" | awk '$1 == ".rela.dyn" { print $2 }')
if [ -n "$rela" ] && [ "$rela" -lt 32768 ]; then
  echo "relocations packed (.rela.dyn $rela bytes)"
else
  echo "relocations not packed (.rela.dyn ${rela:-missing} bytes)" >&2; fail=1
fi
undef=$(aarch64-linux-gnu-nm -D --undefined-only "$so" | awk '$1 == "U" && $2 !~ /@/ { print $2 }')
if [ -z "$undef" ]; then
  echo "no unresolved symbols (every undefined one is versioned, from the C library)"
else
  echo "unresolved symbols (the .so would not load):" >&2; echo "$undef" >&2; fail=1
fi
hooks=$(aarch64-linux-gnu-nm -D --defined-only "$so" | awk '{print $NF}' | grep -E 'ForTest|NativeBridge_test|^cs_test_' || true)
if [ -z "$hooks" ]; then
  echo "no test hooks exported ($(aarch64-linux-gnu-nm -D --defined-only "$so" | grep -c ' T Java_') JNI entry points)"
else
  echo "test hooks exported by the phone build:" >&2; echo "$hooks" >&2; fail=1
fi
[ "$bytes" -le "$budget" ] || { echo "over the 3 MiB budget" >&2; fail=1; }
exit $fail

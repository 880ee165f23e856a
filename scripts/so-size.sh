#!/usr/bin/env bash
# The phone library as built: builds libcloudsync.so for aarch64 with the
# `phone` profile and the Android page alignment (16 KiB, which build.rs adds
# for Android targets; given here through RUSTFLAGS because the stand-in is a
# Linux target), as a stand-in for the NDK build (no NDK here), and checks it
# with readelf / nm:
#   - the 3 MiB size budget;
#   - every LOAD segment aligned to 16 KiB (0x4000);
#   - SONAME libcloudsync.so (set by build.rs for Linux and Android targets);
#   - no test hook among the exported symbols (*ForTest, NativeBridge_test*,
#     cs_test_*: they exist only with the ffi-test-hooks feature).
# Needs the aarch64 toolchain that scripts/cross-aarch64-test.sh installs.
# usage: scripts/so-size.sh   (prints what it checked; exit 1 on any failure)
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
unset RUSTUP_TOOLCHAIN
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-z,max-page-size=16384"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/aarch64-phone}
/usr/bin/cargo build -q --target aarch64-unknown-linux-gnu --lib --no-default-features --profile phone
so=$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/phone/libcloudsync.so
bytes=$(stat -c %s "$so")
budget=$((3 * 1024 * 1024))
fail=0
echo "libcloudsync.so (aarch64, --profile phone, 16 KiB pages): $bytes bytes, budget $budget"
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
hooks=$(aarch64-linux-gnu-nm -D --defined-only "$so" | awk '{print $NF}' | grep -E 'ForTest|NativeBridge_test|^cs_test_' || true)
if [ -z "$hooks" ]; then
  echo "no test hooks exported ($(aarch64-linux-gnu-nm -D --defined-only "$so" | grep -c ' T Java_') JNI entry points)"
else
  echo "test hooks exported by the phone build:" >&2; echo "$hooks" >&2; fail=1
fi
[ "$bytes" -le "$budget" ] || { echo "over the 3 MiB budget" >&2; fail=1; }
exit $fail

#!/usr/bin/env bash
# The phone library's size: builds libcloudsync.so for aarch64 with the `phone`
# profile and the Android page alignment (16 KiB, as .cargo/config.toml sets for
# aarch64-linux-android), as a stand-in for the NDK build (no NDK here), and
# checks it against the 3 MiB budget and the 16 KiB segment alignment.
# Needs the aarch64 toolchain that scripts/cross-aarch64-test.sh installs.
# usage: scripts/so-size.sh   (prints bytes; exit 1 over budget or misaligned)
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
echo "libcloudsync.so (aarch64, --profile phone, 16 KiB pages): $bytes bytes, budget $budget"
if aarch64-linux-gnu-readelf -lW "$so" | awk '$1 == "LOAD" && $NF != "0x4000" { bad = 1 } END { exit bad }'; then
  echo "LOAD segments aligned to 16 KiB"
else
  echo "a LOAD segment is not 16 KiB aligned" >&2; exit 1
fi
[ "$bytes" -le "$budget" ] || { echo "over the 3 MiB budget" >&2; exit 1; }

#!/usr/bin/env bash
# "Runs on ARM": compile-check the library for the phone's Android targets
# (aarch64-linux-android, armv7-linux-androideabi, x86_64-linux-android), with
# every `cfg(target_os = "android")` path on: android_logger (logcat), the JNI
# entry points of src/ffi/jni/ and the C ABI, as the app ships it
# (`-p cloudsync --lib`, like android/build.gradle.kts's cargo ndk
# build) and again with the FFI test hooks (`--features ffi-test-hooks`).
# Warnings in this crate fail the check (an Android-only path is never seen by
# the host's clippy).
#
# Without the Android NDK, using only Debian packages (installed by this script
# when missing): Debian's Rust 1.96 (rustc-web) with its std
# sources (rust-web-src) through -Zbuild-std, and clang for the C parts of the
# build scripts (ring, bundled SQLite). There is no bionic here, so glibc's
# headers stand in for it: the C objects only type-check and are never linked or
# shipped. This proves the Rust code, the Android cfg paths and the build
# scripts compile for Android; it does not produce a usable .so (the real one is
# built with cargo-ndk, see android/build.gradle.kts).
#
# usage: scripts/android-check.sh [extra `cargo check` args]
# env:   TARGETS (default: the three above), CARGO_TARGET_DIR (default target/android-check)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
TARGETS=${TARGETS:-"aarch64-linux-android armv7-linux-androideabi x86_64-linux-android"}

need=(rustc-web cargo-web rust-web-src clang lld llvm libc6-dev-arm64-cross libc6-dev-armhf-cross libc6-dev-amd64-cross)
if ! dpkg -s "${need[@]}" >/dev/null 2>&1; then
  echo "== installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# Debian's compiler (its std sources match it), not rustup's proxies.
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
unset RUSTUP_TOOLCHAIN
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/android-check}
bin=$CARGO_TARGET_DIR/cc-wrappers; mkdir -p "$bin"
clang_inc=$(clang -print-resource-dir)/include
/usr/bin/rustc --version
for t in $TARGETS; do
  case $t in
    aarch64-linux-android)   ct=aarch64-linux-android24;    inc=/usr/aarch64-linux-gnu/include ;;
    armv7-linux-androideabi) ct=armv7a-linux-androideabi24; inc="/usr/arm-linux-gnueabihf/include -D__ARM_PCS_VFP" ;;
    x86_64-linux-android)    ct=x86_64-linux-android24;     inc="/usr/include/x86_64-linux-gnu -isystem /usr/include" ;;
    *) echo "unsupported target $t" >&2; exit 2 ;;
  esac
  w=$bin/$t-clang
  printf '#!/bin/sh\nexec clang "$@" --target=%s -nostdlibinc -isystem %s -isystem %s -Wno-unused-command-line-argument\n' \
    "$ct" "$clang_inc" "$inc" > "$w"
  chmod +x "$w"
  u=${t//-/_}
  export "CC_$u=$w" "AR_$u=llvm-ar"
  for feats in "" ffi-test-hooks; do
    echo "== $t: cargo check -p cloudsync --lib${feats:+ --features $feats}"
    log=$CARGO_TARGET_DIR/check-$t${feats:+-$feats}.log
    /usr/bin/cargo check -Zbuild-std=std,panic_abort --target "$t" -p cloudsync --lib \
      ${feats:+--features "$feats"} --message-format short "$@" 2>&1 | tee "$log"
    st=${PIPESTATUS[0]}
    [ "$st" = 0 ] || exit "$st"
    # Deny warnings in our own code only (std and dependencies are not ours).
    if grep -E '^src/.*: warning' "$log"; then
      echo "warnings in cloudsync for $t (see above)" >&2
      exit 1
    fi
  done
done
echo "== Android compile check passed in $(( $(date +%s) - start ))s"

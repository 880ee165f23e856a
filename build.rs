//! Link arguments of `libcloudsync.so`, and nothing else: no code is
//! generated and no native library is built here (the bundled SQLite is
//! built by `libsqlite3-sys`).
//!
//! * Linux and Android: the SONAME `libcloudsync.so`, so a program linked
//!   with `-lcloudsync` records that name (not a build path) and finds the
//!   library by it at run time, and Android's loader sees the name it expects.
//! * Android: LOAD segments aligned to 16 KiB (`-z max-page-size=16384`).
//!   Android 15+ devices may use 16 KiB pages, and Google Play requires
//!   native libraries whose LOAD segments are 16 KiB aligned (NDK r28 does
//!   this by default; this makes older NDKs do it too). It also bounds the
//!   file's padding steps to 16 KiB instead of 64 KiB (BENCHMARKS.md,
//!   "Library size"). Here rather than in `.cargo/config.toml` so that it
//!   holds for whoever builds the crate (a Gradle plugin, `cargo ndk`, a
//!   workspace that has its own config). `scripts/so-size.sh` checks both
//!   on the aarch64 stand-in build with `readelf`.
//!
//! Both apply to the cdylib only (`rustc-cdylib-link-arg`): the CLI, the
//! tests and the rlib link as before.

fn main() {
    // Only this file decides what is emitted (not the sources).
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcloudsync.so");
    }
    if os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,max-page-size=16384");
    }
}

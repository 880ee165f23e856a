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
//! * Android: packed dynamic relocations (lld's `--pack-dyn-relocs`, the
//!   NDK's linker since r22). Unpacked, the ~4,400 relative relocations
//!   (vtables, `&str`s in statics, the root store's slices) take 24 bytes
//!   each, 106 KB of `.rela.dyn`; packed, about 15 KB (issue 23, BENCHMARKS.md
//!   "Library size, issue 23 headroom"). Android's loader reads the `android`
//!   packing from API 23 and RELR from API 28 (API 28 and 29 with Android's
//!   own tags), as the NDK's BuildSystemMaintainers.md documents; the app's
//!   minSdk is 24 (`android/build.gradle.kts`), so `android` it is. The level
//!   comes from `cargo ndk --platform` (`CARGO_NDK_ANDROID_PLATFORM`); without
//!   it, the app's minSdk is assumed. Below API 23 nothing is packed. The same
//!   choice as newer NDK clang drivers make by themselves, so passing it
//!   again there changes nothing.
//!
//! All apply to the cdylib only (`rustc-cdylib-link-arg`): the CLI, the
//! tests and the rlib link as before.

/// The app's minSdk (`android/build.gradle.kts`), when `cargo ndk` does not say.
const DEFAULT_ANDROID_API: u32 = 24;

fn main() {
    // Only this file decides what is emitted (not the sources).
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_NDK_ANDROID_PLATFORM");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcloudsync.so");
    }
    if os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,max-page-size=16384");
        let api = std::env::var("CARGO_NDK_ANDROID_PLATFORM")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(DEFAULT_ANDROID_API);
        match api {
            30.. => println!("cargo:rustc-cdylib-link-arg=-Wl,--pack-dyn-relocs=android+relr"),
            28..=29 => {
                println!("cargo:rustc-cdylib-link-arg=-Wl,--pack-dyn-relocs=android+relr");
                println!("cargo:rustc-cdylib-link-arg=-Wl,--use-android-relr-tags");
            }
            23..=27 => println!("cargo:rustc-cdylib-link-arg=-Wl,--pack-dyn-relocs=android"),
            _ => {}
        }
    }
}

// Android library module for cloudsync: the Java API (com.miui.cloudsync) plus
// libcloudsync.so for arm64-v8a, armeabi-v7a and x86_64, built from the Rust
// crate one directory up with `cargo ndk` before the JNI libs are merged.
// Include it from an app's settings.gradle.kts (see README.md):
//   include(":cloudsync"); project(":cloudsync").projectDir = file("<path>/android")

import org.gradle.api.tasks.Exec

plugins {
    id("com.android.library")
}

val crateDir: File = projectDir.parentFile
val abis = listOf("arm64-v8a", "armeabi-v7a", "x86_64")
val rustJniLibs = layout.buildDirectory.dir("rustJniLibs")
val hostJniLib = layout.buildDirectory.dir("hostJniLib")
val hostBin = layout.buildDirectory.dir("hostBin")
val minSdkVersion = 24

android {
    namespace = "com.miui.cloudsync"
    compileSdk = 34

    defaultConfig {
        minSdk = minSdkVersion
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
        consumerProguardFiles("consumer-rules.pro")
        ndk {
            abiFilters += abis
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }

    sourceSets {
        getByName("main") {
            // cargo ndk writes <abi>/libcloudsync.so here.
            jniLibs.srcDir(rustJniLibs)
            // Resources: the default src/main/res, packed into the AAR and merged into the
            // app's: res/xml/cloudsync_data_extraction_rules.xml and cloudsync_backup_rules.xml,
            // the backup rules the app's manifest points at (README.md, "Keep the database out
            // of backups"; checked by scripts/backup-rules-check.py).
        }
    }

    testOptions {
        unitTests.all {
            // src/test holds host-JVM tests that load the *host* build of the
            // library (cargoHostBuild below); scripts/test-jvm.sh is the canonical runner.
            it.useJUnitPlatform()
            it.jvmArgs("-Xcheck:jni")
            it.systemProperty("java.library.path", hostJniLib.get().asFile.path)
            // TestServer.java: the dev server binary and where its children keep their files.
            it.systemProperty("cloudsync.bin", hostBin.get().file("cloudsync").asFile.path)
            it.systemProperty("cloudsync.devserver.dir", layout.buildDirectory.dir("jvmTestDevServer").get().asFile.path)
            it.dependsOn("cargoHostBuild")
        }
    }
}

// Release build of the .so for every ABI. Needs: cargo install cargo-ndk,
// rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android,
// and ANDROID_NDK_HOME (or the NDK installed through the SDK manager).
val cargoNdkBuild = tasks.register<Exec>("cargoNdkBuild") {
    group = "build"
    description = "Builds libcloudsync.so for $abis with cargo ndk."
    workingDir = crateDir
    val args = mutableListOf("cargo", "ndk")
    abis.forEach { args += listOf("-t", it) }
    args += listOf(
        "--platform", minSdkVersion.toString(),
        "-o", rustJniLibs.get().asFile.path,
        "build", "--profile", "phone", "-p", "cloudsync", "--lib",
    )
    commandLine(args)
    // Every input of the phone build: the library's sources, the workspace
    // manifest and lock, build.rs (the 16 KiB page alignment, the SONAME, packed
    // relocations) and .cargo/config.toml (the SQLite compile-time options); a
    // change to any of them rebuilds the .so. The other crates of the workspace
    // (crates/: CLI, dev server, test kit) are not part of it.
    inputs.dir(File(crateDir, "src"))
    inputs.files(
        File(crateDir, "Cargo.toml"),
        File(crateDir, "Cargo.lock"),
        File(crateDir, "build.rs"),
        File(crateDir, ".cargo/config.toml"),
    )
    outputs.dir(rustJniLibs)
}

// Host build for the host-JVM unit tests in src/test, as scripts/test-jvm.sh
// builds it: crates/jvm-test-lib, the library with ffi-test-hooks (the
// deliberate panic, openForTest), copied under the name the Java code loads,
// and the `cloudsync` binary, whose `dev-server --admin` children run the tus
// servers the credential and refresh tests drive (TestServer.java). The tests
// of the shared `cloudsync dev-server` (CLOUDSYNC_DEVSERVER_READY) are skipped
// under Gradle; scripts/test-jvm.sh runs them.
tasks.register<Exec>("cargoHostBuild") {
    group = "build"
    description = "Builds the host libcloudsync.so of the JVM tests (crates/jvm-test-lib) and the cloudsync binary."
    workingDir = crateDir
    commandLine("cargo", "build", "-p", "cloudsync-jvm-test-lib", "-p", "cloudsync-cli")
    outputs.dir(hostJniLib)
    outputs.dir(hostBin)
    doLast {
        copy {
            from(File(crateDir, "target/debug/libcloudsync_jvm_test_lib.so"))
            into(hostJniLib)
            rename { "libcloudsync.so" }
        }
        copy {
            from(File(crateDir, "target/debug/cloudsync"))
            into(hostBin)
        }
    }
}

// Every variant's merge<Variant>JniLibFolders task packs the .so files.
tasks.configureEach {
    if (name.startsWith("merge") && name.endsWith("JniLibFolders")) {
        dependsOn(cargoNdkBuild)
    }
}

dependencies {
    // Nullability annotations of the public API (@NotNull / @Nullable), which Kotlin reads
    // natively. compileOnly: class-retention annotations, nothing at run time, nothing added to
    // the app's dependencies (consumer-rules.pro has -dontwarn for R8). The same version Debian's
    // libjetbrains-annotations-java gives the host javac (scripts/test-jvm.sh,
    // scripts/android-java-check.sh).
    compileOnly("org.jetbrains:annotations:23.0.0")
    testCompileOnly("org.jetbrains:annotations:23.0.0")
    testImplementation("org.junit.jupiter:junit-jupiter:5.9.2")
    testRuntimeOnly("org.junit.platform:junit-platform-launcher:1.9.2")
    androidTestImplementation("androidx.test:runner:1.5.2")
    androidTestImplementation("androidx.test.ext:junit:1.1.5")
    androidTestImplementation("junit:junit:4.13.2")
}

#!/usr/bin/env bash
# Host-JVM tests of the JNI layer: builds the host libcloudsync.so with the
# test hooks, compiles the Java API and its JUnit 5 tests with javac, starts
# `cloudsync dev-server` (loopback TLS tus servers) for the full-flow tests,
# and runs everything under `java -Xcheck:jni`. Test classes that need servers
# of their own (tokens, failures, recorded Authorization headers, mirrors)
# start a `cloudsync dev-server --admin` child each (TestServer.java), from
# the binary named by -Dcloudsync.bin. Idempotent; exits non-zero on any
# failure, including a -Xcheck:jni warning.
#
# env: CLOUDSYNC_JVM_NO_DEVSERVER=1  do not start the shared dev server (the
#        tests of its own files are skipped; TestServer's children still run)
#      JUNIT_ARGS="--select-method com.miui.cloudsync.SyncAgentTest#queueBasics"  narrow the run
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/jvm-test
JARS=/usr/share/java
mkdir -p "$OUT"

# The nullability annotations of the Java API: org.jetbrains:annotations 23.0.0
# (compileOnly in android/build.gradle.kts; Debian packages the same version).
ANNOTATIONS=$JARS/org.jetbrains.annotations-java8.jar
need=()
[ -f "$JARS/junit-platform-console-standalone.jar" ] || need+=(junit5)
[ -f "$ANNOTATIONS" ] || need+=(libjetbrains-annotations-java)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]} (Debian)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
command -v javac >/dev/null || { echo "javac (JDK >= 11) is required" >&2; exit 1; }

# The dev server: the CLI crate's `cloudsync dev-server`, for the shared
# server below and for TestServer's children (`--admin`). A private copy, so
# another build in the shared target dir cannot swap it under the tests.
echo "== cargo build -p cloudsync-cli (dev server)"
cargo build -p cloudsync-cli
mkdir -p "$OUT/bin"
cp -f target/debug/cloudsync "$OUT/bin/cloudsync"
CLOUDSYNC_BIN=$OUT/bin/cloudsync
DEVSERVER=""
if [ "${CLOUDSYNC_JVM_NO_DEVSERVER:-}" != 1 ]; then
  DEVSERVER=$CLOUDSYNC_BIN
fi

# The library under test: crates/jvm-test-lib, the library with its test hooks
# (ffi-test-hooks: openForTest, the deliberate panic and error) and nothing
# else. Its own crate, so the hooks never rebuild the root crate's .so.
echo "== cargo build -p cloudsync-jvm-test-lib"
cargo build -p cloudsync-jvm-test-lib
# A private copy under the name Java loads (System.loadLibrary("cloudsync")),
# so another build in the shared target dir cannot swap it under the JVM.
mkdir -p "$OUT/native"
cp -f target/debug/libcloudsync_jvm_test_lib.so "$OUT/native/libcloudsync.so"
if command -v nm >/dev/null; then
  exported=$(nm -D --defined-only "$OUT/native/libcloudsync.so")
  if grep -E "NativeBridge_test(Server|Mirror)" <<<"$exported" >&2; then
    echo "the JVM test library still has in-process test server entry points (above)" >&2; exit 1
  fi
  grep -q NativeBridge_openForTest <<<"$exported" || { echo "the JVM test library lacks the ffi-test-hooks entry points" >&2; exit 1; }
  grep -q NativeBridge_open <<<"$exported" || { echo "the JVM test library lacks the library's entry points" >&2; exit 1; }
fi

echo "== javac"
CP=""
for j in junit-platform-console-standalone junit-jupiter-api junit-jupiter-engine junit-platform-commons \
         junit-platform-engine junit-platform-launcher junit-platform-reporting opentest4j apiguardian-api; do
  [ -f "$JARS/$j.jar" ] || { echo "missing $JARS/$j.jar (apt-get install junit5)" >&2; exit 1; }
  CP="$CP:$JARS/$j.jar"
done
CP=${CP#:}:$ANNOTATIONS
rm -rf "$OUT/classes" "$OUT/test-classes"
mkdir -p "$OUT/classes" "$OUT/test-classes"
javac -Xlint:all -Werror --release 11 -cp "$ANNOTATIONS" -d "$OUT/classes" android/src/main/java/com/miui/cloudsync/*.java
javac -Xlint:all,-processing,-path -Werror --release 11 -cp "$OUT/classes:$CP" -d "$OUT/test-classes" \
  android/src/test/java/com/miui/cloudsync/*.java

# TestServer's children keep their files here, one directory per test class;
# each writes its pid there and removes it once stopped.
ADMIN_DIR=$OUT/devserver-admin
rm -rf "$ADMIN_DIR"
mkdir -p "$ADMIN_DIR"

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  # A child the JVM did not stop (it died, or a test class never reached @AfterAll).
  for pidfile in "$ADMIN_DIR"/*/pid; do
    [ -f "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
  done
}
trap cleanup EXIT

if [ -n "$DEVSERVER" ]; then
  echo "== starting cloudsync dev-server"
  rm -rf "$OUT/devserver"
  mkdir -p "$OUT/devserver"
  READY=$OUT/devserver/ready.json
  "$DEVSERVER" dev-server --regions in,sg --dir "$OUT/devserver/data" --ready-file "$READY" \
    >"$OUT/devserver/log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    [ -s "$READY" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      cat "$OUT/devserver/log" >&2
      echo "dev-server exited before it was ready" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -s "$READY" ] || { cat "$OUT/devserver/log" >&2; echo "dev-server not ready after 30 s" >&2; exit 1; }
  export CLOUDSYNC_DEVSERVER_READY=$READY
else
  unset CLOUDSYNC_DEVSERVER_READY
  echo "== without dev server: full-flow tests will be skipped"
fi

echo "== java -Xcheck:jni (JUnit 5)"
LOG=$OUT/junit.log
set +e
# shellcheck disable=SC2086
java -Xcheck:jni -Djava.library.path="$OUT/native" \
  -Dcloudsync.bin="$CLOUDSYNC_BIN" -Dcloudsync.devserver.dir="$ADMIN_DIR" \
  -cp "$OUT/classes:$OUT/test-classes:$CP" org.junit.platform.console.ConsoleLauncher \
  --disable-banner --details=tree --fail-if-no-tests \
  ${JUNIT_ARGS:---select-package com.miui.cloudsync} 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "JVM tests failed (exit $status)" >&2
  exit "$status"
fi
if grep -E "WARNING in native method|FATAL ERROR in native method|WARNING: JNI local refs" "$LOG" >/dev/null; then
  echo "-Xcheck:jni reported a problem (see $LOG)" >&2
  exit 1
fi
echo "== JVM tests passed"

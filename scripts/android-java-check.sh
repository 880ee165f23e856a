#!/usr/bin/env bash
# Android checks of the Java API that run without the Android SDK:
#  1. javac --release 8 -Xlint:all -Werror of android/src/main/java (the language
#     and library level minSdk 24 accepts: no `var`, no List.of, ...), with the
#     nullability annotations jar (org.jetbrains:annotations 23.0.0, Debian's
#     libjetbrains-annotations-java) on the class path;
#  2. the R8/ProGuard keep rules: ProGuard (Debian's `proguard`, 6.2) shrinks and
#     obfuscates the API plus an app stand-in (scripts/android-java-check/KeepFixture.java,
#     with its own listener and credential provider classes) under
#     android/consumer-rules.pro, and scripts/android-java-check/JniKeepCheck.java fails
#     if any class, constructor or method the native code looks up by name
#     (parsed from src/ffi/jni/*.rs and src/error.rs), any native method, or an
#     app's implementation of a listener method native code calls, was removed or
#     renamed. The same run with no rules at all must fail the check (the check
#     can see what it is there to see).
# Installs the Debian packages it needs when missing (openjdk-17-jdk-headless,
# libjetbrains-annotations-java, proguard). Idempotent.
# usage: scripts/android-java-check.sh   (outputs in target/android-java-check/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/android-java-check
ANNOTATIONS=/usr/share/java/org.jetbrains.annotations-java8.jar

need=()
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
[ -f "$ANNOTATIONS" ] || need+=(libjetbrains-annotations-java)
command -v proguard >/dev/null || need+=(proguard)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
JAVA_HOME=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}
CT_SYM=$JAVA_HOME/lib/ct.sym
[ -f "$CT_SYM" ] || { echo "no $CT_SYM (a JDK 11+ is required)" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT/classes"

echo "== javac --release 8 -Xlint:all -Werror (android/src/main/java)"
javac --release 8 -Xlint:all -Werror -cp "$ANNOTATIONS" -d "$OUT/classes" \
  android/src/main/java/com/miui/cloudsync/*.java

echo "== ProGuard with android/consumer-rules.pro (shrink + obfuscate + optimize)"
# The app stand-in, compiled against the API like an app.
javac --release 8 -Xlint:all -Werror -cp "$OUT/classes" -d "$OUT/classes" \
  scripts/android-java-check/KeepFixture.java
java scripts/android-java-check/JniKeepCheck.java java8lib "$CT_SYM" "$OUT/java8-api.jar"

# $1: name of the run, $2: the rules to include ("" for none).
proguard_run() {
  cat >"$OUT/$1.pro" <<EOF
-injars $OUT/classes
-outjars $OUT/$1.jar
-libraryjars $OUT/java8-api.jar
-libraryjars $ANNOTATIONS
${2:+-include $2}
-dontwarn org.jetbrains.annotations.**
-keep class com.example.app.KeepFixture { public static void main(java.lang.String[]); }
-printmapping $OUT/$1-mapping.txt
EOF
  proguard @"$OUT/$1.pro" >"$OUT/$1.log" 2>&1 || { cat "$OUT/$1.log" >&2; echo "ProGuard failed ($1)" >&2; exit 1; }
}

proguard_run consumer "$ROOT/android/consumer-rules.pro"
java scripts/android-java-check/JniKeepCheck.java check "$ROOT" "$OUT/classes" \
  "$OUT/consumer.jar" "$OUT/consumer-mapping.txt"

echo "== the check fails without the keep rules"
proguard_run empty ""
if java scripts/android-java-check/JniKeepCheck.java check "$ROOT" "$OUT/classes" \
     "$OUT/empty.jar" "$OUT/empty-mapping.txt" 2>"$OUT/empty-check.log"; then
  echo "JniKeepCheck passed a build with no keep rules: it checks nothing" >&2
  exit 1
fi
echo "(as it should: $(grep -c FAIL "$OUT/empty-check.log") findings, e.g. $(head -n 1 "$OUT/empty-check.log"))"
echo "== Android Java checks passed"

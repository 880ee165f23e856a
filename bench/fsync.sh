#!/usr/bin/env bash
# Durable commits per item: fsync/fdatasync calls of one `cloudsync run` of N
# one-chunk files (100 KB) to a loopback dev-server, counted by strace, for
# this tree and (if given) another build. See BENCHMARKS.md, "Commits per item".
#
#   bench/fsync.sh [OTHER_CLOUDSYNC_BINARY]     # ~1 min once built
#
# env: BENCH_FILES=100  BENCH_OUT=target/bench-fsync
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${BENCH_FILES:-100}
OUT=${BENCH_OUT:-$ROOT/target/bench-fsync}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
command -v strace >/dev/null || {
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq strace >/dev/null
}
cargo build --release --bin cloudsync >"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; exit 1; }
NEW=$ROOT/target/release/cloudsync
OTHER=${1:-}

rm -rf "$OUT/srv" "$OUT/ready.json" "$OUT/files"
"$NEW" dev-server --regions in --no-checksum --dir "$OUT/srv" --ready-file "$OUT/ready.json" >"$OUT/server.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$OUT/ready.json" ] && break; sleep 0.1; done
[ -s "$OUT/ready.json" ] || { echo "dev-server did not start" >&2; exit 1; }
# The firmware root every command that changes trust or uploads is anchored in.
export CLOUDSYNC_ROOT=$OUT/srv/root.json
mkdir -p "$OUT/files"
for i in $(seq "$N"); do head -c 100000 /dev/urandom >"$OUT/files/$i.jpg"; done

count() { # label binary
    local label=$1 cs=$2 db=$OUT/q-$1.db
    rm -f "$db" "$db-wal" "$db-shm"
    "$cs" --db "$db" init --root "$OUT/srv/root.json" >/dev/null
    "$cs" --db "$db" config install "$OUT/srv/config.json" >/dev/null
    "$cs" --db "$db" region set-country IN >/dev/null
    "$cs" --db "$db" enqueue "$OUT/files/"*.jpg >/dev/null
    strace -f -c -e trace=fsync,fdatasync -o "$OUT/strace-$label.txt" \
        "$cs" --db "$db" run --test-ca "$OUT/srv/ca.pem" >"$OUT/run-$label.log" 2>&1
    grep -q "uploaded $N " "$OUT/run-$label.log" || { cat "$OUT/run-$label.log" >&2; exit 1; }
    local calls
    calls=$(awk '$NF=="total"{print $4}' "$OUT/strace-$label.txt")
    printf '| %s | %s | %s | %.2f |\n' "$label" "$N" "$calls" "$(python3 -c "print($calls / $N)")"
}
echo "| build | one-chunk items | fsync + fdatasync calls | per item |"
echo "|---|---|---|---|"
count this "$NEW"
[ -n "$OTHER" ] && count other "$OTHER"
exit 0

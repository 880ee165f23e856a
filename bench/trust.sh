#!/usr/bin/env bash
# What reading trust from the database costs: this tree against a base commit
# (default: the last commit before trust moved into the database), side by
# side in one run. See BENCHMARKS.md, "Trust read from the database".
#
#   bench/trust.sh [BASE_REV]      # ~8 min cold (two release builds), ~2 min warm
#
# 1. benches/trust.rs built twice (base with --cfg trust_bench_old), run
#    alternately BENCH_REPS times: approved_region() and the per-buffer check
#    of a run, quiet and right after another handle's writes.
# 2. Upload throughput, interleaved with the order rotated: curl -T, the base
#    `cloudsync run` and this tree's, default 8 MiB PATCHes to a loopback TLS
#    dev-server without the checksum extension (as in bench/run.sh).
#
# env: BENCH_REPS=5  BENCH_SIZE_MIB=512  BENCH_OUT=target/bench-trust
# Since issue 21 every command that uploads or changes trust needs the firmware
# root: CLOUDSYNC_ROOT on those commands (older binaries ignore it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BASE=${1:-7e31d12}
OUT=${BENCH_OUT:-$ROOT/target/bench-trust}
REPS=${BENCH_REPS:-5}
SIZE_MIB=${BENCH_SIZE_MIB:-512}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
log() { printf '[trust-bench] %s\n' "$*" >&2; }
for t in curl python3; do command -v $t >/dev/null || { echo "missing $t (bench/run.sh installs it)" >&2; exit 1; }; done
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 1; }

# Same bench profile on both sides; LTO off only to keep the builds short.
export CARGO_PROFILE_BENCH_LTO=off CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
bench_exe() { # dir -> path of the trust bench executable built there
    (cd "$1" && cargo bench --bench trust --no-run --message-format=json 2>>"$OUT/build.log") |
        python3 -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "trust":
        print(m["executable"])'
}

log "base $BASE: worktree and builds (release CLI, trust bench with --cfg trust_bench_old)"
SRC=$OUT/base-src
[ -e "$SRC/.git" ] || git worktree add --detach "$SRC" "$BASE" >/dev/null
git -C "$SRC" checkout -q --detach "$BASE"
git -C "$SRC" checkout -q -- . # undo the copy below from an earlier run
cp benches/trust.rs "$SRC/benches/trust.rs"
grep -q 'name = "trust"' "$SRC/Cargo.toml" || printf '\n[[bench]]\nname = "trust"\nharness = false\n' >>"$SRC/Cargo.toml"
export CARGO_TARGET_DIR=$OUT/base-target
(cd "$SRC" && RUSTFLAGS="--cfg trust_bench_old" cargo build --release --bin cloudsync >>"$OUT/build.log" 2>&1)
OLD_BENCH=$(export RUSTFLAGS="--cfg trust_bench_old"; bench_exe "$SRC")
OLD_CS=$CARGO_TARGET_DIR/release/cloudsync
unset CARGO_TARGET_DIR
log "this tree: builds"
cargo build --release --bin cloudsync >>"$OUT/build.log" 2>&1
NEW_BENCH=$(bench_exe "$ROOT")
NEW_CS=$ROOT/target/release/cloudsync
for x in "$OLD_BENCH" "$NEW_BENCH" "$OLD_CS" "$NEW_CS"; do [ -x "$x" ] || { echo "not built: $x" >&2; exit 1; }; done

log "1. micro-benchmarks, $REPS alternating reps"
: >"$OUT/micro.tsv"
for rep in $(seq "$REPS"); do
    for side in old new; do
        exe=$OLD_BENCH; [ $side = new ] && exe=$NEW_BENCH
        "$exe" --iters 200000 --write-iters 2000 | awk -v s=$side '/^RESULT/{print s"\t"$2"\t"$3}' >>"$OUT/micro.tsv"
    done
done

log "2. uploads: $REPS reps of curl / base / this tree, ${SIZE_MIB} MiB, interleaved"
WORK=$OUT/work
mkdir -p "$WORK"
BIG=$WORK/big.bin
BYTES=$((SIZE_MIB * 1024 * 1024))
[ "$(stat -c %s "$BIG" 2>/dev/null || echo 0)" = "$BYTES" ] || head -c "$BYTES" /dev/urandom >"$BIG"
cat "$BIG" >/dev/null
rm -rf "$WORK/srv" "$WORK/ready.json"
"$NEW_CS" dev-server --regions in --no-checksum --dir "$WORK/srv" --ready-file "$WORK/ready.json" >"$OUT/server.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
[ -s "$WORK/ready.json" ] || { echo "dev-server did not start" >&2; exit 1; }
URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["regions"]["in"]["url"])' "$WORK/ready.json")
: >"$OUT/uploads.tsv"
record() { echo "$1	$(tail -n 1 "$WORK/time.txt")" >>"$OUT/uploads.tsv"; rm -f "$WORK/srv/in/"*; }
cs_upload() { # label binary
    local db=$WORK/$1.db
    rm -f "$db" "$db-wal" "$db-shm"
    "$2" --db "$db" init --root "$WORK/srv/root.json" >/dev/null
    CLOUDSYNC_ROOT="$WORK/srv/root.json" "$2" --db "$db" config install "$WORK/srv/config.json" >/dev/null
    CLOUDSYNC_ROOT="$WORK/srv/root.json" "$2" --db "$db" region set-country IN >/dev/null
    "$2" --db "$db" enqueue "$BIG" >/dev/null
    sync
    CLOUDSYNC_ROOT="$WORK/srv/root.json" /usr/bin/time -o "$WORK/time.txt" -f '%e %U %S' "$2" --db "$db" run --test-ca "$WORK/srv/ca.pem" >"$OUT/last-run.log" 2>&1
    grep -q "uploaded 1 bytes $BYTES failed 0" "$OUT/last-run.log" || { cat "$OUT/last-run.log" >&2; exit 1; }
    record "$1"
}
curl_upload() {
    local loc code
    loc=$(curl -sS -i --cacert "$WORK/srv/ca.pem" -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $BYTES" "$URL" |
        tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
    sync
    code=$(/usr/bin/time -o "$WORK/time.txt" -f '%e %U %S' curl -sS -o /dev/null -w '%{http_code}' --cacert "$WORK/srv/ca.pem" \
        -T "$BIG" -X PATCH -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' -H 'Tus-Resumable: 1.0.0' "$loc")
    [ "$code" = 204 ] || { echo "curl PATCH answered $code" >&2; exit 1; }
    record curl
}
for rep in $(seq "$REPS"); do
    cases=(curl old new)
    for i in 0 1 2; do
        case ${cases[$(((i + rep) % 3))]} in
        curl) curl_upload ;;
        old) cs_upload old "$OLD_CS" ;;
        new) cs_upload new "$NEW_CS" ;;
        esac
    done
    log "  rep $rep/$REPS (load $(cut -d' ' -f1 /proc/loadavg))"
done

python3 - "$OUT" "$BASE" "$BYTES" <<'EOF' | tee "$OUT/results.md"
import sys, statistics as st
out, base, nbytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = {}
for l in open(f"{out}/micro.tsv"):
    side, key, v = l.split()
    m.setdefault((side, key), []).append(float(v))
print(f"### Trust checks (medians of per-rep medians; base = {base})\n")
print("| measure | base | this tree | this tree / base |")
print("|---|---|---|---|")
for key, label in [("approved_region_quiet_ns", "`approved_region()`, nothing else writes"),
                   ("buffer_check_quiet_ns", "per-buffer check, nothing else writes"),
                   ("buffer_check_after_queue_write_ns", "per-buffer check after another handle's queue write"),
                   ("buffer_check_after_trust_write_ns", "per-buffer check after another handle's trust write")]:
    o, n = st.median(m[("old", key)]), st.median(m[("new", key)])
    print(f"| {label} | {o/1000:.2f} µs | {n/1000:.2f} µs | {n/o:.2f}x |")
rows = {}
for l in open(f"{out}/uploads.tsv"):
    c, w, u, s = l.split()
    rows.setdefault(c, []).append((float(w), float(u) + float(s)))
mib = nbytes / 2**20
print(f"\n### Upload, {mib:.0f} MiB, default 8 MiB PATCHes, no checksum extension (medians; ratios per rep)\n")
print("| client | MiB/s | CPU s/GiB | throughput vs curl |")
print("|---|---|---|---|")
for c, label in [("curl", "curl -T"), ("old", f"cloudsync run, base {base}"), ("new", "cloudsync run, this tree")]:
    w = [x[0] for x in rows[c]]
    cpu = [x[1] / (nbytes / 2**30) for x in rows[c]]
    r = st.median([cw[0] / x[0] for x, cw in zip(rows[c], rows["curl"])])
    print(f"| {label} | {mib / st.median(w):.0f} | {st.median(cpu):.2f} | {r:.2f}x |")
ratio = st.median([o[0] / n[0] for o, n in zip(rows["old"], rows["new"])])
print(f"\nthroughput this tree / base (per-rep pairs): **{ratio:.3f}x**")
EOF

#!/usr/bin/env bash
# cloudsync benchmarks: one command, idempotent. See BENCHMARKS.md.
#
#   bench/run.sh                 # everything: ~4 min once built (+~5 min for a cold release build)
#
# Environment knobs:
#   BENCH_REPS=7         repetitions of each upload measurement (medians are reported)
#   BENCH_SIZE_MIB=1024  size of the big upload file
#   BENCH_OUT=target/bench   where results, logs and the test files go
#   BENCH_SKIP_LIB=1     skip the (slow, LTO) library .so build
#   BENCH_SKIP_APT=1     never call apt-get
#
# Output: $BENCH_OUT/results.md (tables), $BENCH_OUT/raw.tsv (every sample),
# $BENCH_OUT/*.log (bench binaries' full output).
# Since issue 21 every command that uploads or changes trust needs the firmware
# root: CLOUDSYNC_ROOT on those commands (older binaries ignore it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${BENCH_OUT:-$ROOT/target/bench}
REPS=${BENCH_REPS:-7}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/work
mkdir -p "$WORK"
RAW=$OUT/raw.tsv
: >"$RAW"
T0=$(date +%s)

log() { printf '[bench %4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }

# ---------------------------------------------------------------- tools
need_apt=()
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v curl >/dev/null || need_apt+=(curl)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v python3 >/dev/null || need_apt+=(python3)
if [ "${BENCH_SKIP_APT:-0}" != 1 ]; then
    command -v hyperfine >/dev/null || want_hf=1
    if [ ${#need_apt[@]} -gt 0 ] || [ "${want_hf:-0}" = 1 ]; then
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        log "apt-get install ${need_apt[*]} ${want_hf:+hyperfine (optional)}"
        $SUDO apt-get update -qq || true
        if [ ${#need_apt[@]} -gt 0 ]; then
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
        fi
        if [ "${want_hf:-0}" = 1 ]; then
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq hyperfine >/dev/null 2>&1 ||
                log "hyperfine not installed (optional; falling back to a shell loop)"
        fi
    fi
fi
for t in sqlite3 curl python3; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 1; }

# ---------------------------------------------------------------- build
log "cargo build --release"
tb=$(date +%s)
cargo build --release >"$OUT/build.log" 2>&1 || { tail -n 40 "$OUT/build.log" >&2; exit 1; }
log "cargo bench --no-run (queue, startup, hash, upload)"
# Run the bench executables built here directly (not via `cargo bench`), so a
# source edit by someone else mid-run can't trigger a rebuild inside a timing.
cargo bench --bench queue --bench startup --bench hash --bench upload --no-run --message-format=json 2>"$OUT/bench-build.log" |
    python3 -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
' >"$OUT/bench-exes.txt" || { tail -n 30 "$OUT/bench-build.log" >&2; exit 1; }
bench_exe() { awk -v n="$1" '$1==n{print $2}' "$OUT/bench-exes.txt"; }
for b in queue startup hash upload; do [ -x "$(bench_exe $b)" ] || { echo "bench $b did not build" >&2; exit 1; }; done
BUILD_SECS=$(($(date +%s) - tb))
CS=$ROOT/target/release/cloudsync
[ -x "$CS" ] || { echo "no $CS" >&2; exit 1; }
DEFAULT_SO_BYTES=$(stat -c %s target/release/libcloudsync.so 2>/dev/null || echo 0)

# ---------------------------------------------------------------- test files
BIG=$WORK/big.bin
SMALL=$WORK/small.bin
BIG_BYTES=$((SIZE_MIB * 1024 * 1024))
SMALL_BYTES=$((10 * 1024 * 1024))
if [ "$(stat -c %s "$BIG" 2>/dev/null || echo 0)" != "$BIG_BYTES" ]; then
    log "creating $SIZE_MIB MiB random file"
    head -c "$BIG_BYTES" /dev/urandom >"$BIG.tmp" && mv "$BIG.tmp" "$BIG"
fi
if [ "$(stat -c %s "$SMALL" 2>/dev/null || echo 0)" != "$SMALL_BYTES" ]; then
    head -c "$SMALL_BYTES" /dev/urandom >"$SMALL.tmp" && mv "$SMALL.tmp" "$SMALL"
fi
cat "$BIG" "$SMALL" >/dev/null # page cache: every contender reads from memory

# ---------------------------------------------------------------- dev-servers
# Two loopback TLS tus servers (region `in`): one without the checksum
# extension (fair vs curl, which sends no checksum), one with it.
SRV_PIDS=()
cleanup() {
    for p in "${SRV_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${SRV_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
start_server() { # name extra-args...
    local name=$1
    shift
    rm -rf "${WORK:?}/srv-$name" "$WORK/ready-$name.json"
    "$CS" dev-server --regions in --dir "$WORK/srv-$name" --ready-file "$WORK/ready-$name.json" "$@" \
        >"$OUT/server-$name.log" 2>&1 &
    SRV_PIDS+=($!)
    for _ in $(seq 100); do [ -s "$WORK/ready-$name.json" ] && return 0; sleep 0.1; done
    echo "dev-server $name did not start" >&2
    exit 1
}
start_server nock --no-checksum
start_server ck
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$@"; }
URL_NOCK=$(jget "$WORK/ready-nock.json" '["regions"]["in"]["url"]')

wipe_uploads() { rm -f "$WORK/srv-nock/in/"* "$WORK/srv-ck/in/"*; }

# A fresh DB trusting server $1, config installed, country IN, file $2 enqueued.
prep_db() {
    local name=$1 file=$2 db=$WORK/cs-$1.db
    rm -f "$db" "$db-wal" "$db-shm"
    "$CS" --db "$db" init --root "$WORK/srv-$name/root.json" >/dev/null
    CLOUDSYNC_ROOT="$WORK/srv-$name/root.json" "$CS" --db "$db" config install "$WORK/srv-$name/config.json" >/dev/null
    CLOUDSYNC_ROOT="$WORK/srv-$name/root.json" "$CS" --db "$db" region set-country IN >/dev/null
    "$CS" --db "$db" enqueue "$file" >/dev/null
    echo "$db"
}

# record <case> <bytes> <wall> <user> <sys> <maxrss_kib>
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }

# cloudsync run; $1 case label, $2 server, $3 file, $4 chunk size ("" = default 8 MiB)
cs_upload() {
    local label=$1 name=$2 file=$3 chunk=$4 bytes db tf
    bytes=$(stat -c %s "$file")
    db=$(prep_db "$name" "$file")
    tf=$WORK/time.txt
    sync
    CLOUDSYNC_ROOT="$WORK/srv-$name/root.json" /usr/bin/time -o "$tf" -f '%e %U %S %M' "$CS" --db "$db" run --test-ca "$WORK/srv-$name/ca.pem" \
        ${chunk:+--chunk-size "$chunk"} >"$OUT/last-run.log" 2>&1 ||
        { cat "$OUT/last-run.log" >&2; exit 1; }
    grep -q "uploaded 1 bytes $bytes failed 0" "$OUT/last-run.log" || { cat "$OUT/last-run.log" >&2; exit 1; }
    [ "$(stat -c %s "$WORK/srv-$name/in/"*)" = "$bytes" ] || { echo "server copy has wrong size" >&2; exit 1; }
    # shellcheck disable=SC2046
    record "$label" "$bytes" $(tail -n 1 "$tf")
    wipe_uploads
}

# curl: POST (creation, untimed) then one PATCH of the whole file (timed).
curl_upload() {
    local file=$1 bytes loc tf code
    bytes=$(stat -c %s "$file")
    loc=$(curl -sS -i --cacert "$WORK/srv-nock/ca.pem" -X POST -H 'Tus-Resumable: 1.0.0' \
        -H "Upload-Length: $bytes" "$URL_NOCK" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
    [ -n "$loc" ] || { echo "tus POST failed" >&2; exit 1; }
    tf=$WORK/time.txt
    sync
    code=$(/usr/bin/time -o "$tf" -f '%e %U %S %M' curl -sS -o /dev/null -w '%{http_code}' \
        --cacert "$WORK/srv-nock/ca.pem" -T "$file" -X PATCH \
        -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' \
        -H 'Tus-Resumable: 1.0.0' "$loc")
    [ "$code" = 204 ] || { echo "curl PATCH answered $code" >&2; exit 1; }
    [ "$(stat -c %s "$WORK/srv-nock/in/"*)" = "$bytes" ] || { echo "server copy has wrong size" >&2; exit 1; }
    # shellcheck disable=SC2046
    record curl "$bytes" $(tail -n 1 "$tf")
    wipe_uploads
}

# The same upload in-process (benches/upload.rs), split into pre-pass (SHA-256
# etc., until the first MiB leaves) and transfer. One TSV row per run.
PHASES=$OUT/phases.tsv
: >"$PHASES"
lib_upload() { # label server file chunk
    local label=$1 name=$2 file=$3 chunk=$4 db
    db=$(prep_db "$name" "$file")
    sync
    "$(bench_exe upload)" --db "$db" --ca "$WORK/srv-$name/ca.pem" --root "$WORK/srv-$name/root.json" \
        --chunk-size "$chunk" >"$OUT/last-run.log" 2>&1 ||
        { cat "$OUT/last-run.log" >&2; exit 1; }
    awk -v l="$label" '/^RESULT/{v[$2]=$3} END{print l"\t"v["bytes"]"\t"v["total_wall"]"\t"v["total_cpu"]"\t"v["prepass_wall"]"\t"v["prepass_cpu"]"\t"v["transfer_wall"]"\t"v["transfer_cpu"]}' \
        "$OUT/last-run.log" >>"$PHASES"
    wipe_uploads
}

# ---------------------------------------------------------------- 1+2: uploads
wipe_uploads
: >"$OUT/loadavg.txt"
log "uploads: $REPS reps of curl / cloudsync run (no checksum, 1 PATCH) / (checksum, 1 PATCH) / (default 8 MiB chunks) / in-process phase split, ${SIZE_MIB} MiB, interleaved"
for rep in $(seq "$REPS"); do
    # Rotate the order each rep so no contender always runs first / last.
    cases=(curl cs-nock cs-ck cs-nock-8m lib-nock)
    for i in 0 1 2 3 4; do
        c=${cases[$(((i + rep) % 5))]}
        case $c in
        curl) curl_upload "$BIG" ;;
        cs-nock) cs_upload cs-nock nock "$BIG" "$BIG_BYTES" ;;
        cs-ck) cs_upload cs-ck ck "$BIG" "$BIG_BYTES" ;;
        cs-nock-8m) cs_upload cs-nock-8m nock "$BIG" "" ;;
        lib-nock) lib_upload lib-nock nock "$BIG" "$BIG_BYTES" ;;
        esac
    done
    log "  rep $rep/$REPS done (load average $(cut -d' ' -f1 /proc/loadavg))"
    cut -d' ' -f1 /proc/loadavg >>"$OUT/loadavg.txt"
done
log "peak RSS: $REPS reps of cloudsync with a 10 MiB file (no checksum / checksum)"
for rep in $(seq "$REPS"); do
    cs_upload small-nock nock "$SMALL" "$BIG_BYTES"
    cs_upload small-ck ck "$SMALL" "$BIG_BYTES"
    curl_upload "$SMALL" && sed -i '$ s/^curl/small-curl/' "$RAW"
done

# ---------------------------------------------------------------- CLI process start-up
DB_STATUS=$(prep_db nock "$SMALL")
log "CLI start-up: cloudsync --db DB status"
if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 3 --runs 30 --export-json "$OUT/hyperfine-status.json" \
        "$CS --db $DB_STATUS status" >"$OUT/hyperfine-status.log" 2>&1
    STATUS_MS=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.2f" % (r["median"]*1e3))' "$OUT/hyperfine-status.json")
else
    STATUS_MS=$(python3 - "$CS" "$DB_STATUS" <<'EOF'
import subprocess, sys, time, statistics
t = []
for _ in range(30):
    s = time.perf_counter(); subprocess.run([sys.argv[1], "--db", sys.argv[2], "status"], check=True, stdout=subprocess.DEVNULL); t.append(time.perf_counter() - s)
print("%.2f" % (statistics.median(t) * 1e3))
EOF
)
fi

# Servers are no longer needed: free the CPU for the in-process benches.
cleanup
SRV_PIDS=()

# ---------------------------------------------------------------- 3+4: bench binaries
log "bench hash (whole-file SHA-256 pass, ${SIZE_MIB} MiB)"
"$(bench_exe hash)" --file "$BIG" --runs 5 2>&1 | tee "$OUT/hash.log" | grep -v '^RESULT' >&2
log "bench queue (enqueue vs sqlite3 CLI, next_due 1k vs 1M)"
"$(bench_exe queue)" 2>&1 | tee "$OUT/queue.log" | grep -v '^RESULT' >&2
log "bench startup (config verify, Agent::open)"
"$(bench_exe startup)" 2>&1 | tee "$OUT/startup.log" | grep -v '^RESULT' >&2

# ---------------------------------------------------------------- 5: .so size
SO_BYTES=""
if [ "${BENCH_SKIP_LIB:-0}" != 1 ]; then
    log "cargo build --release -p cloudsync --lib (host .so as shipped)"
    cargo build --release -p cloudsync --lib >"$OUT/build-lib.log" 2>&1 ||
        { tail -n 40 "$OUT/build-lib.log" >&2; exit 1; }
    SO_BYTES=$(stat -c %s target/release/libcloudsync.so)
    cp target/release/libcloudsync.so "$OUT/libcloudsync.host.so"
    file "$OUT/libcloudsync.host.so" >"$OUT/so-file.txt" 2>/dev/null || true
fi

# ---------------------------------------------------------------- report
TOTAL_SECS=$(($(date +%s) - T0))
python3 - "$RAW" "$OUT" "$SIZE_MIB" "$REPS" "$STATUS_MS" "$SO_BYTES" "$DEFAULT_SO_BYTES" "$BUILD_SECS" "$TOTAL_SECS" <<'EOF' | tee "$OUT/results.md"
import sys, statistics as st, re, os, platform, subprocess
raw, out, size_mib, reps, status_ms, so, so_default, build_s, total_s = sys.argv[1:10]
rows = [l.rstrip("\n").split("\t") for l in open(raw) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r[0], []).append(r)
def samples(case):
    return [(int(b), float(w), float(u), float(s), int(m)) for _, b, w, u, s, m in by.get(case, [])]
def med(xs): return st.median(xs)
GIB = 1 << 30
def up(case):
    s = samples(case)
    if not s: return None
    return dict(
        n=len(s),
        mib_s=med([b / w / (1 << 20) for b, w, u, sy, m in s]),
        wall=med([w for b, w, u, sy, m in s]),
        cpu_gib=med([(u + sy) / (b / GIB) for b, w, u, sy, m in s]),
        user_gib=med([u / (b / GIB) for b, w, u, sy, m in s]),
        sys_gib=med([sy / (b / GIB) for b, w, u, sy, m in s]),
        rss_mib=med([m / 1024 for b, w, u, sy, m in s]),
        rss_max=max(m / 1024 for b, w, u, sy, m in s),
    )
def results(name):
    d = {}
    p = os.path.join(out, name)
    if os.path.exists(p):
        for l in open(p):
            m = re.match(r"RESULT (\S+) (\S+) (\S+)", l)
            if m: d[m.group(1)] = float(m.group(2))
    return d
h, q, s = results("hash.log"), results("queue.log"), results("startup.log")

# Per-rep ratios (same rep = same machine load), then their median.
def paired(a, b, f):
    A, B = samples(a), samples(b)
    return med([f(x, y) for x, y in zip(A, B)]) if A and B else float("nan")
thr = lambda c: paired(c, "curl", lambda x, y: (x[0] / x[1]) / (y[0] / y[1]))
cpu = lambda c: paired(c, "curl", lambda x, y: ((x[2] + x[3]) / x[0]) / ((y[2] + y[3]) / y[0]))

print(f"## Results ({platform.node()}, {os.cpu_count()} CPUs, {reps} reps, {size_mib} MiB file; total {total_s}s, build {build_s}s)\n")
print("### Upload: one tus PATCH over loopback TLS to the dev-server (medians)\n")
print("| client | MiB/s | wall s | CPU s/GiB (user+sys) | user | sys | peak RSS MiB | throughput vs curl | CPU vs curl |")
print("|---|---|---|---|---|---|---|---|---|")
names = [("curl", "curl -T (PATCH only; POST untimed)"),
         ("cs-nock", "cloudsync run, no checksum ext., 1 PATCH"),
         ("cs-ck", "cloudsync run, checksum ext., 1 PATCH"),
         ("cs-nock-8m", "cloudsync run, no checksum ext., default 8 MiB PATCHes")]
for c, label in names:
    u = up(c)
    if not u: continue
    r1 = "1.00x" if c == "curl" else f"{thr(c):.2f}x"
    r2 = "1.00x" if c == "curl" else f"{cpu(c):.2f}x"
    print(f"| {label} | {u['mib_s']:.0f} | {u['wall']:.2f} | {u['cpu_gib']:.2f} | {u['user_gib']:.2f} | {u['sys_gib']:.2f} | {u['rss_mib']:.1f} | {r1} | {r2} |")
print()
la = [float(x) for x in open(os.path.join(out, "loadavg.txt")).read().split()] if os.path.exists(os.path.join(out, "loadavg.txt")) else []
if la:
    print(f"1-min load average after each rep: {' '.join('%.1f' % x for x in la)} (2 CPUs, shared with other work).\n")
ph = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "phases.tsv")) if l.strip()]
ph = [(float(b), *map(float, r)) for _, b, *r in ph]
curl_s = samples("curl")
if ph and curl_s:
    # columns: bytes, total_wall, total_cpu, pre_wall, pre_cpu, xfer_wall, xfer_cpu
    g = lambda i: med([r[i] / (r[0] / GIB) for r in ph])
    pair = lambda f: med([f(r, c) for r, c in zip(ph, curl_s)])
    xt = pair(lambda r, c: (r[0] / r[5]) / (c[0] / c[1]))
    xc = pair(lambda r, c: (r[6] / r[0]) / ((c[2] + c[3]) / c[0]))
    tt = pair(lambda r, c: (r[0] / r[1]) / (c[0] / c[1]))
    tc = pair(lambda r, c: (r[2] / r[0]) / ((c[2] + c[3]) / c[0]))
    print("Phase split of the same upload in-process (`benches/upload.rs`: `Agent::run_once`, no checksum ext., 1 PATCH; "
          "pre-pass = everything before the first MiB of the body leaves, mostly the whole-file SHA-256):\n")
    print("| phase | wall s/GiB | MiB/s | CPU s/GiB | throughput vs curl | CPU vs curl |")
    print("|---|---|---|---|---|---|")
    print(f"| pre-pass (lease, OPTIONS, SHA-256, POST, session row) | {g(3):.2f} | - | {g(4):.2f} | - | - |")
    print(f"| transfer (PATCH body to confirmed end) | {g(5):.2f} | {1024 / g(5):.0f} | {g(6):.2f} | {xt:.2f}x | {xc:.2f}x |")
    print(f"| total | {g(1):.2f} | {1024 / g(1):.0f} | {g(2):.2f} | {tt:.2f}x | {tc:.2f}x |")
    print()
print(f"cloudsync's whole-file SHA-256 pass (`upload::hash_file`, page cache): "
      f"{h.get('hash_cpu_s_per_gib', float('nan')):.2f} CPU s/GiB, {h.get('hash_wall_s_per_gib', float('nan')):.2f} s/GiB wall.\n")
print("### Peak RSS of `cloudsync run` (max over reps)\n")
print("| file | no checksum | checksum |")
print("|---|---|---|")
for lab, a, b in [("10 MiB", "small-nock", "small-ck"), (f"{size_mib} MiB", "cs-nock", "cs-ck")]:
    ua, ub = up(a), up(b)
    print(f"| {lab} | {ua['rss_max']:.1f} MiB | {ub['rss_max']:.1f} MiB |")
uc = up("small-curl")
if uc: print(f"\n(curl, 10 MiB: {uc['rss_max']:.1f} MiB; {size_mib} MiB: {up('curl')['rss_max']:.1f} MiB)")
print()
print("### Queue (SQLite, WAL, synchronous=FULL, real file in a temp dir)\n")
print("| measure | cloudsync | sqlite3 CLI | speed ratio cloudsync/sqlite3 |")
print("|---|---|---|---|")
print(f"| single enqueue, 1 durable tx each (median 50-item block) | {q.get('enqueue_single_cloudsync_per_s', 0):.0f}/s | {q.get('enqueue_single_sqlite3_per_s', 0):.0f}/s | {q.get('enqueue_single_ratio', 0):.2f}x |")
print(f"| batch enqueue, 10,000 paths in 1 tx (median of rounds) | {q.get('enqueue_batch_cloudsync_per_s', 0):.0f}/s | {q.get('enqueue_batch_sqlite3_per_s', 0):.0f}/s | {q.get('enqueue_batch_ratio', 0):.2f}x |")
print(f"\nsingle enqueue per-call latency: p50 {q.get('enqueue_single_p50_ms', 0):.2f} ms, p99 {q.get('enqueue_single_p99_ms', 0):.2f} ms\n")
print("| next_due | median | p99 |")
print("|---|---|---|")
for n in ("1000", "1000000"):
    print(f"| {int(n):,} items | {q.get(f'next_due_{n}_median_us', 0):.1f} us | {q.get(f'next_due_{n}_p99_us', 0):.1f} us |")
print(f"\nnext_due ratio 1M / 1k: {q.get('next_due_ratio', 0):.2f}x (target <= 2x)\n")
print("### Start-up\n")
print("| measure | median |")
print("|---|---|")
print(f"| TrustedRoot::from_initial | {s.get('root_verify_median_us', 0):.0f} us |")
print(f"| VerifiedConfig::verify, 50 regions, no ca_certs ({s.get('config_plain_envelope_kib', 0):.0f} KiB) | {s.get('config_verify_plain_median_us', 0):.0f} us |")
print(f"| VerifiedConfig::verify, 50 regions, 1 CA PEM each ({s.get('config_ca_envelope_kib', 0):.0f} KiB) | {s.get('config_verify_ca_median_us', 0):.0f} us |")
print(f"| Agent::open, existing DB (50-region config w/ CAs, 10k items) | {s.get('agent_open_median_ms', 0):.2f} ms (p99 {s.get('agent_open_p99_ms', 0):.2f}) |")
print(f"| `cloudsync --db DB status` whole process | {status_ms} ms |")
print()
if so:
    print(f"### Size\n\nlibcloudsync.so (host x86_64, --release -p cloudsync --lib, stripped): {int(so):,} bytes ({int(so)/2**20:.2f} MiB)")
    if so_default and so_default != "0":
        print(f"(default features incl. the dev-server: {int(so_default):,} bytes ({int(so_default)/2**20:.2f} MiB))")
EOF
log "done in ${TOTAL_SECS}s; results in $OUT/results.md"

#!/usr/bin/env bash
# Issue 15, "read every byte once": this tree against a base commit (default:
# the last one that hashed the whole file before the POST), curl -T and
# openssl, side by side in one run. See BENCHMARKS.md, "Read every byte once".
#
#   bench/onepass.sh [BASE_REV]    # ~15 min cold (two release builds), less warm
#
# 1. Uploads of one big file to loopback TLS dev-servers, interleaved with the
#    order rotated each repetition: curl -T (one PATCH, POST untimed) to the
#    server without the checksum extension; `openssl dgst -sha256` of the file
#    (the CPU of "the same work": curl + a hash); this tree's and the base's
#    `cloudsync run` (default 8 MiB PATCHes) to the server without and with
#    the checksum extension. Wall, CPU and peak RSS from /usr/bin/time.
# 2. Bytes read from the source per upload: read(2)/pread64(2) on the file,
#    counted by strace, divided by the file size.
# 3. Peak RSS of a 10 MiB upload (and of a 4 GiB one with BENCH_HUGE=1).
# 4. A photo library: BENCH_PHOTOS files of 3 MiB in one `cloudsync run`,
#    items/s, base and this tree alternately.
#
# env: BENCH_REPS=5 BENCH_SIZE_MIB=1024 BENCH_PHOTOS=1000 BENCH_PHOTO_REPS=3
#      BENCH_HUGE=0 BENCH_OUT=target/bench-onepass BENCH_PARTS="1 2 3 4"
#      (a part left out keeps its last results in $BENCH_OUT)
# Since issue 21 every command that uploads or changes trust needs the firmware
# root: CLOUDSYNC_ROOT on those commands (older binaries ignore it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BASE=${1:-d3696da}
OUT=${BENCH_OUT:-$ROOT/target/bench-onepass}
REPS=${BENCH_REPS:-5}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
PHOTOS=${BENCH_PHOTOS:-1000}
PHOTO_REPS=${BENCH_PHOTO_REPS:-3}
PARTS=" ${BENCH_PARTS:-1 2 3 4} "
want() { [[ $PARTS == *" $1 "* ]]; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/work
mkdir -p "$WORK"
log() { printf '[onepass-bench] %s\n' "$*" >&2; }

need=()
for t in curl openssl strace python3; do command -v $t >/dev/null || need+=("$t"); done
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    log "apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

log "base $BASE: worktree and release build; this tree: release build"
SRC=$OUT/base-src
[ -e "$SRC/.git" ] || git worktree add --detach "$SRC" "$BASE" >/dev/null
git -C "$SRC" checkout -q --detach "$BASE"
(cd "$SRC" && CARGO_TARGET_DIR=$OUT/base-target cargo build --release --bin cloudsync >>"$OUT/build.log" 2>&1)
cargo build --release --bin cloudsync >>"$OUT/build.log" 2>&1
OLD=$OUT/base-target/release/cloudsync
NEW=$ROOT/target/release/cloudsync
for x in "$OLD" "$NEW"; do [ -x "$x" ] || { echo "not built: $x" >&2; exit 1; }; done

BIG=$WORK/big.bin
BYTES=$((SIZE_MIB * 1024 * 1024))
[ "$(stat -c %s "$BIG" 2>/dev/null || echo 0)" = "$BYTES" ] || head -c "$BYTES" /dev/urandom >"$BIG"
SMALL=$WORK/small.bin
[ "$(stat -c %s "$SMALL" 2>/dev/null || echo 0)" = $((10 << 20)) ] || head -c $((10 << 20)) /dev/urandom >"$SMALL"
cat "$BIG" "$SMALL" >/dev/null

SRV_PIDS=()
trap 'for p in "${SRV_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
start_server() { # name extra-args...
    local name=$1
    shift
    rm -rf "${WORK:?}/srv-$name" "$WORK/ready-$name.json"
    "$NEW" dev-server --regions in --dir "$WORK/srv-$name" --ready-file "$WORK/ready-$name.json" "$@" \
        >"$OUT/server-$name.log" 2>&1 &
    SRV_PIDS+=($!)
    for _ in $(seq 100); do [ -s "$WORK/ready-$name.json" ] && return 0; sleep 0.1; done
    echo "dev-server $name did not start" >&2
    exit 1
}
start_server nock --no-checksum
start_server ck
URL_NOCK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["regions"]["in"]["url"])' "$WORK/ready-nock.json")
wipe_uploads() { rm -f "$WORK/srv-nock/in/"* "$WORK/srv-ck/in/"*; }

RAW=$OUT/raw.tsv
touch "$RAW"
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; } # case bytes wall user sys rss_kib

# A fresh DB (built by binary $1) trusting server $2 with files $3... enqueued.
prep_db() {
    local cs=$1 name=$2 db=$WORK/db-$2.db
    shift 2
    rm -f "$db" "$db-wal" "$db-shm"
    "$cs" --db "$db" init --root "$WORK/srv-$name/root.json" >/dev/null
    CLOUDSYNC_ROOT="$WORK/srv-$name/root.json" "$cs" --db "$db" config install "$WORK/srv-$name/config.json" >/dev/null
    CLOUDSYNC_ROOT="$WORK/srv-$name/root.json" "$cs" --db "$db" region set-country IN >/dev/null
    printf '%s\0' "$@" | xargs -0 -n 500 "$cs" --db "$db" enqueue >/dev/null
    echo "$db"
}

cs_upload() { # label binary server file
    local label=$1 cs=$2 name=$3 file=$4 bytes db tf
    bytes=$(stat -c %s "$file")
    db=$(prep_db "$cs" "$name" "$file")
    tf=$WORK/time.txt
    CLOUDSYNC_ROOT="$WORK/srv-$name/root.json" /usr/bin/time -o "$tf" -f '%e %U %S %M' "$cs" --db "$db" run --test-ca "$WORK/srv-$name/ca.pem" \
        >"$OUT/last-run.log" 2>&1 || { cat "$OUT/last-run.log" >&2; exit 1; }
    grep -q "uploaded 1 bytes $bytes failed 0" "$OUT/last-run.log" || { cat "$OUT/last-run.log" >&2; exit 1; }
    # shellcheck disable=SC2046
    record "$label" "$bytes" $(tail -n 1 "$tf")
    wipe_uploads
}

curl_upload() { # file
    local file=$1 bytes loc tf code
    bytes=$(stat -c %s "$file")
    loc=$(curl -sS -i --cacert "$WORK/srv-nock/ca.pem" -X POST -H 'Tus-Resumable: 1.0.0' \
        -H "Upload-Length: $bytes" "$URL_NOCK" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
    [ -n "$loc" ] || { echo "tus POST failed" >&2; exit 1; }
    tf=$WORK/time.txt
    code=$(/usr/bin/time -o "$tf" -f '%e %U %S %M' curl -sS -o /dev/null -w '%{http_code}' \
        --cacert "$WORK/srv-nock/ca.pem" -T "$file" -X PATCH \
        -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' \
        -H 'Tus-Resumable: 1.0.0' "$loc")
    [ "$code" = 204 ] || { echo "curl PATCH answered $code" >&2; exit 1; }
    # shellcheck disable=SC2046
    record curl "$bytes" $(tail -n 1 "$tf")
    wipe_uploads
}

openssl_hash() {
    local tf=$WORK/time.txt
    /usr/bin/time -o "$tf" -f '%e %U %S %M' openssl dgst -sha256 "$BIG" >/dev/null
    # shellcheck disable=SC2046
    record openssl "$BYTES" $(tail -n 1 "$tf")
}

if want 1; then
sed -i '/^\(curl\|openssl\|new-\|old-\)/d' "$RAW"
log "1. uploads: $REPS reps, ${SIZE_MIB} MiB, interleaved (curl, openssl, new/old x nock/ck)"
: >"$OUT/loadavg.txt"
cases=(curl openssl new-nock new-ck old-nock old-ck)
for rep in $(seq "$REPS"); do
    for i in $(seq 0 5); do
        c=${cases[$(((i + rep) % 6))]}
        case $c in
        curl) curl_upload "$BIG" ;;
        openssl) openssl_hash ;;
        new-nock) cs_upload new-nock "$NEW" nock "$BIG" ;;
        new-ck) cs_upload new-ck "$NEW" ck "$BIG" ;;
        old-nock) cs_upload old-nock "$OLD" nock "$BIG" ;;
        old-ck) cs_upload old-ck "$OLD" ck "$BIG" ;;
        esac
    done
    cut -d' ' -f1 /proc/loadavg >>"$OUT/loadavg.txt"
    log "  rep $rep/$REPS (load $(cut -d' ' -f1 /proc/loadavg))"
done
fi

READS=$OUT/reads.tsv
touch "$READS"
if want 2; then
log "2. bytes read from the source per upload (strace)"
: >"$READS"
for side in new old; do
    cs=$NEW
    [ $side = old ] && cs=$OLD
    for name in nock ck; do
        db=$(prep_db "$cs" "$name" "$BIG")
        CLOUDSYNC_ROOT="$WORK/srv-$name/root.json" \
            strace -f -y -qq -e trace=read,pread64 -e signal=none -o "$WORK/strace.txt" \
            "$cs" --db "$db" run --test-ca "$WORK/srv-$name/ca.pem" >/dev/null 2>&1
        n=$(python3 - "$WORK/strace.txt" "$BIG" <<'EOF'
import re, sys
path = sys.argv[2]
total = 0
for line in open(sys.argv[1]):
    if ("<" + path + ">") in line:
        m = re.search(r"= (\d+)$", line.strip())
        if m:
            total += int(m.group(1))
print(total)
EOF
)
        printf '%s\t%s\t%s\n' "$side-$name" "$n" "$BYTES" >>"$READS"
        wipe_uploads
    done
done
fi

if want 3; then
sed -i '/^\(small\|huge\)-/d' "$RAW"
log "3. peak RSS: 10 MiB file (and 4 GiB with BENCH_HUGE=1)"
for rep in 1 2 3; do
    cs_upload small-new-nock "$NEW" nock "$SMALL"
    cs_upload small-new-ck "$NEW" ck "$SMALL"
done
if [ "${BENCH_HUGE:-0}" = 1 ]; then
    HUGE=$WORK/huge.bin
    [ "$(stat -c %s "$HUGE" 2>/dev/null || echo 0)" = $((4 << 30)) ] || head -c $((4 << 30)) /dev/urandom >"$HUGE"
    cs_upload huge-new-nock "$NEW" nock "$HUGE"
    cs_upload huge-new-ck "$NEW" ck "$HUGE"
fi
fi

PHOTO_TSV=$OUT/photos.tsv
touch "$PHOTO_TSV"
if want 4; then
log "4. photo library: $PHOTOS x 3 MiB, $PHOTO_REPS reps, base and this tree alternately"
PH=$WORK/photos
mkdir -p "$PH"
if [ "$(find "$PH" -name '*.jpg' | wc -l)" != "$PHOTOS" ]; then
    rm -f "$PH"/*.jpg
    head -c $((3 << 20)) /dev/urandom >"$WORK/photo.seed"
    for i in $(seq 1 "$PHOTOS"); do
        # Distinct content per file: the seed with the file's number in front.
        { printf '%08d' "$i"; tail -c +9 "$WORK/photo.seed"; } >"$PH/IMG_$(printf '%05d' "$i").jpg"
    done
fi
cat "$PH"/*.jpg >/dev/null
: >"$PHOTO_TSV"
for rep in $(seq "$PHOTO_REPS"); do
    for side in new old; do
        cs=$NEW
        [ $side = old ] && cs=$OLD
        for name in nock ck; do
            # shellcheck disable=SC2046
            db=$(prep_db "$cs" "$name" $(find "$PH" -name '*.jpg' | sort))
            t0=$(date +%s.%N)
            CLOUDSYNC_ROOT="$WORK/srv-$name/root.json" "$cs" --db "$db" run --test-ca "$WORK/srv-$name/ca.pem" >"$OUT/last-run.log" 2>&1
            t1=$(date +%s.%N)
            grep -q "uploaded $PHOTOS " "$OUT/last-run.log" || { cat "$OUT/last-run.log" >&2; exit 1; }
            printf '%s\t%s\t%s\n' "$side-$name" "$PHOTOS" "$(python3 -c "print($t1 - $t0)")" >>"$PHOTO_TSV"
            wipe_uploads
        done
    done
    log "  photo rep $rep/$PHOTO_REPS"
done
fi

python3 - "$RAW" "$READS" "$PHOTO_TSV" "$OUT/loadavg.txt" >"$OUT/results.md" <<'EOF'
import statistics as st, sys
from collections import defaultdict
raw = defaultdict(list)
for l in open(sys.argv[1]):
    c, b, wall, u, s, rss = l.split("\t")
    raw[c].append((int(b), float(wall), float(u) + float(s), int(rss)))
med = lambda xs: st.median(xs)
def row(c):
    xs = raw[c]
    b = xs[0][0]
    wall = med([x[1] for x in xs]); cpu = med([x[2] for x in xs]); rss = max(x[3] for x in xs)
    return b, wall, cpu, rss
gib = lambda b: b / (1 << 30)
cb, cw, cc, cr = row("curl")
ob, ow, oc, orss = row("openssl")
print("| client | MiB/s | wall s | CPU s/GiB | peak RSS MiB | throughput vs curl | CPU vs curl+openssl |")
print("|---|---|---|---|---|---|---|")
ref_cpu = (cc + oc) / gib(cb)
for c in ["curl", "openssl", "new-nock", "new-ck", "old-nock", "old-ck"]:
    if c not in raw: continue
    b, w, cpu, rss = row(c)
    tp = (b / (1 << 20)) / w
    vs = (cw / w) if c != "openssl" else float("nan")
    print(f"| {c} | {tp:.0f} | {w:.2f} | {cpu / gib(b):.2f} | {rss / 1024:.1f} | {vs:.2f}x | {cpu / gib(b) / ref_cpu:.2f}x |")
print()
print("Per-repetition ratios (median): ", end="")
for c in ["new-nock", "new-ck", "old-nock", "old-ck"]:
    rs = [cw_i[1] / x[1] for cw_i, x in zip(raw["curl"], raw[c])]
    print(f"{c} {med(rs):.2f}x; ", end="")
print()
print()
print("| source bytes read ÷ file size | ratio |")
print("|---|---|")
for l in open(sys.argv[2]):
    c, n, b = l.split("\t")
    print(f"| {c} | {int(n) / int(b):.3f} |")
print()
for c in sorted(k for k in raw if k.startswith(("small", "huge"))):
    print(f"peak RSS {c}: {max(x[3] for x in raw[c]) / 1024:.1f} MiB")
print()
ph = defaultdict(list)
for l in open(sys.argv[3]):
    c, n, s = l.split("\t")
    ph[c].append(int(n) / float(s))
print("| photo library (3 MiB files) | items/s (median) | vs base |")
print("|---|---|---|")
for c in ["new-nock", "old-nock", "new-ck", "old-ck"]:
    if c in ph:
        base = med(ph["old-" + c.split("-")[1]])
        print(f"| {c} | {med(ph[c]):.1f} | {med(ph[c]) / base:.2f}x |")
loads = [float(x) for x in open(sys.argv[4])]
if loads:
    print()
    print(f"load average during the uploads: {min(loads):.1f}-{max(loads):.1f}")
EOF
cat "$OUT/results.md"

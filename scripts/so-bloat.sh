#!/usr/bin/env bash
# What each part of the phone libcloudsync.so costs: builds the same .so as
# scripts/so-size.sh (aarch64, --profile phone, lld, packed relocations) but
# with symbols kept (CARGO_PROFILE_PHONE_STRIP=none, in its own target dir so
# the stripped build stays cached), then attributes every byte of the loaded
# sections it can:
#   - per section (size -A of the .so; the same as the stripped build's within
#     a few hundred bytes);
#   - per crate: symbols (nm -S) of .text, .rodata, .data.rel.ro and .data;
#     C symbols by the archive they come from (the bundled SQLite, ring's
#     C/assembly), Rust symbols by the first path segment of the demangled name
#     (a generic function instantiated for another crate's type counts for the
#     crate that defines the function, as cargo bloat does);
#   - .eh_frame per crate, by the function each FDE covers (readelf -wf).
# What no symbol covers (Rust's anonymous constants: string literals, panic
# locations, the root store's DER bytes, ...) is shown as "(no symbol)".
# usage: scripts/so-bloat.sh [top-N functions, default 25]
set -euo pipefail
cd "$(dirname "$0")/.."
top=${1:-25}
export CARGO_TARGET_DIR=${SO_BLOAT_TARGET_DIR:-$PWD/target/aarch64-phone-bloat}
CARGO_PROFILE_PHONE_STRIP=none scripts/so-size.sh >/dev/null 2>&1 || true
out=$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/phone
so=$out/libcloudsync.so
[ -f "$so" ] || { echo "no $so (run scripts/so-size.sh to see why)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The newest build of each archive (an old profile's may linger in build/).
sqlite_a=$(ls -t "$out"/build/libsqlite3-sys-*/out/libsqlite3.a | head -1)
ring_a=$(ls -t "$out"/build/ring-*/out/libring_core_*_.a | head -1)
aarch64-linux-gnu-nm --defined-only "$sqlite_a" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/sqlite.syms"
aarch64-linux-gnu-nm --defined-only "$ring_a" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/ring.syms"
aarch64-linux-gnu-readelf -SW "$so" >"$tmp/sections"
aarch64-linux-gnu-nm -n -S --defined-only "$so" >"$tmp/nm"
aarch64-linux-gnu-nm -n -S --defined-only -C "$so" >"$tmp/nmc"
aarch64-linux-gnu-readelf -wf "$so" 2>/dev/null | awk '/^Contents of the/ { on = ($4 == ".eh_frame") } on && / FDE / { print }' >"$tmp/fde"
python3 - "$tmp" "$top" <<'EOF'
import bisect, re, sys
tmp, top = sys.argv[1], int(sys.argv[2])
sqlite = set(open(f"{tmp}/sqlite.syms").read().split())
ring = set(open(f"{tmp}/ring.syms").read().split())
secs = []  # (name, addr, size)
for line in open(f"{tmp}/sections"):
    m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\S+\s+(\S*A\S*)\s", line)
    if m and int(m.group(2), 16):
        secs.append((m.group(1), int(m.group(2), 16), int(m.group(3), 16)))
def section(addr):
    for n, a, s in secs:
        if a <= addr < a + s:
            return n
    return None
def crate(raw, dem):
    base = raw.split(".")[0]
    if raw in sqlite or base in sqlite:
        return "SQLite (C, bundled)"
    if raw in ring or base in ring or raw.startswith("ring_core_"):
        return "ring (C/asm)"
    if not (raw.startswith("_ZN") or raw.startswith("_R")):
        return "other C (crt, libgcc)"
    if re.search(r"backtrace_rs|gimli::|addr2line::|miniz_oxide::|rustc_demangle::", dem):
        return "std: backtrace printing (default panic hook)"
    d, prev = dem, None
    while d != prev:  # <&mut [T] as ...>, <*const dyn X as ...>
        prev, d = d, re.sub(r"^([<&*(\[]|dyn |mut |const )", "", d)
    c = re.split(r"::|<| |>|\[|;|\]|,|\)", d, maxsplit=1)[0]
    if "::" not in d.split(" as ")[0] or not c:
        # a primitive or generic self type (<[T]>::..., <T as alloc::...>): the trait's crate
        m = re.search(r" as &?([A-Za-z_][A-Za-z0-9_]*)::", dem)
        c = m.group(1) if m else "core"
    if c in ("core", "alloc", "std", "std_detect", "panic_unwind", "unwind", "compiler_builtins", "hashbrown_std"):
        c = "std (core, alloc, std: incl. generics instantiated for other crates' types)"
    return c
syms = []
for a, b in zip(open(f"{tmp}/nm"), open(f"{tmp}/nmc")):
    pa, pb = a.split(maxsplit=3), b.rstrip("\n").split(" ", 3)
    if len(pa) < 4:
        continue
    addr, size, raw, dem = int(pa[0], 16), int(pa[1], 16), pa[3].strip(), pb[3]
    syms.append((addr, size, raw, dem))
best = {}
for s_ in syms:  # aliases (one address, several names): count once
    if s_[0] not in best or s_[1] > best[s_[0]][1]:
        best[s_[0]] = s_
syms = sorted(best.values())
bysec = {}
fn_starts, fn_crate = [], []
for addr, size, raw, dem in syms:
    s = section(addr)
    if s is None:
        continue
    c = crate(raw, dem)
    bysec.setdefault(c, {}).setdefault(s, 0)
    bysec[c][s] += size
    if s == ".text":
        fn_starts.append(addr); fn_crate.append((addr + size, c))
for line in open(f"{tmp}/fde"):
    m = re.match(r"\S+ ([0-9a-f]+) \S+ FDE .* pc=([0-9a-f]+)\.\.", line)
    length, pc = int(m.group(1), 16) + 4, int(m.group(2), 16)
    i = bisect.bisect_right(fn_starts, pc) - 1
    c = fn_crate[i][1] if i >= 0 and pc < fn_crate[i][0] else "(no symbol)"
    bysec.setdefault(c, {}).setdefault(".eh_frame", 0)
    bysec[c][".eh_frame"] += length
cols = [".text", ".rodata", ".eh_frame", ".data.rel.ro", ".data"]
secsize = {n: s for n, _, s in secs}
print("Sections (loaded; file = sum + headers and alignment gaps):\n")
print("| section | bytes |\n| --- | ---: |")
for n, _, s in sorted(secs, key=lambda x: -x[2]):
    if s >= 1024:
        print(f"| {n} | {s:,} |")
print(f"| all loaded sections | {sum(s for _, _, s in secs):,} |")
print("\nPer crate (bytes of symbols in each section; .eh_frame by the function each FDE covers):\n")
print("| crate | " + " | ".join(cols) + " | total |\n| --- |" + " ---: |" * (len(cols) + 1))
rows = sorted(bysec.items(), key=lambda kv: -sum(kv[1].get(c, 0) for c in cols))
shown = {c: 0 for c in cols}
for name, d in rows:
    for c in cols:
        shown[c] += d.get(c, 0)
    t = sum(d.get(c, 0) for c in cols)
    if t >= 2048:
        print(f"| {name} | " + " | ".join(f"{d.get(c, 0):,}" for c in cols) + f" | {t:,} |")
small = [d for _, d in rows if sum(d.get(c, 0) for c in cols) < 2048]
print(f"| {len(small)} smaller crates | " + " | ".join(f"{sum(d.get(c, 0) for d in small):,}" for c in cols)
      + f" | {sum(sum(d.get(c, 0) for c in cols) for d in small):,} |")
print("| (no symbol: anonymous constants, padding) | " + " | ".join(f"{secsize.get(c, 0) - shown[c]:,}" for c in cols)
      + f" | {sum(secsize.get(c, 0) - shown[c] for c in cols):,} |")
print(f"\nLargest {top} symbols:\n")
print("| bytes | section | crate | symbol |\n| ---: | --- | --- | --- |")
for addr, size, raw, dem in sorted(syms, key=lambda s: -s[1])[:top]:
    d = dem if len(dem) <= 90 else dem[:87] + "..."
    print(f"| {size:,} | {section(addr)} | {crate(raw, dem)} | `{d}` |")
EOF

#!/usr/bin/env bash
# Issue 20: guest instructions per reading of candidate architectures (bench/int8_archs.py),
# f32 and int8, as a Cortex-A72 (Pi 4, no dot product) and a Cortex-A76 (Pi 5, dot product),
# counted under qemu-aarch64 the way `bench/run.sh --aarch64` does:
#   per reading = (count(long.wav) - count(short.wav)) / (readings(long) - readings(short))
# so start-up (model load, optimisation) cancels. Whole `earshotd analyze`, 22050 Hz wav.
# The plugin is ../shared/tools/qemu-insncount/insncount.c plus a per-symbol count
# (qemu_plugin_insn_symbol on each translation block's first instruction; the binary must
# not be stripped), so the table can say which kernels the instructions go to. Instructions,
# not cycles; no real Pi was timed.
#
# Usage: bash bench/int8-archs.sh [ARCH_DIR]      (ARCH_DIR: ../int8-archs, made by int8_archs.py)
# env:   EARSHOTD_AARCH64  the aarch64 earshotd, not stripped (default: what
#                          `bash scripts/build-pi.sh` built, target/pi/release/earshotd)
#        CANDIDATES        names (default: every directory in ARCH_DIR with a metadata.json)
#        CPUS, PRECISIONS  default "cortex-a72 cortex-a76", "f32 int8"
#        JOBS              parallel qemu runs (default 1)
# Writes ARCH_DIR/counts/<cand>-<cpu>-<precision>-<short|long>.{json,count} and
# ARCH_DIR/counts/summary.json (per reading: instructions, NEON share, per-symbol counts).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(realpath "${1:-../int8-archs}")
BIN=${EARSHOTD_AARCH64:-${CARGO_TARGET_DIR:-target}/pi/${EARSHOT_PI_PROFILE:-release}/earshotd}
CPUS=${CPUS:-cortex-a72 cortex-a76}
PRECISIONS=${PRECISIONS:-f32 int8}
JOBS=${JOBS:-1}
OUT=$DIR/counts
mkdir -p "$OUT" "$DIR/wav"
py=python3; [ -x .venv/bin/python ] && py=.venv/bin/python
command -v qemu-aarch64 >/dev/null || { echo "int8-archs: qemu-aarch64 missing (apt-get install qemu-user)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "int8-archs: $BIN not found: run scripts/build-pi.sh or set EARSHOTD_AARCH64" >&2; exit 1; }

# --- the plugin: insncount.c (mnemonics) + instructions per symbol -------------------------
cat >"$OUT/insncount-sym.c" <<'C'
/* insncount.c (../shared/tools/qemu-insncount) + instructions per translation block, keyed by
 * the block's host address; at exit each block is resolved through /proc/self/maps to
 * (mapped file, file offset), which bench/int8-archs.sh maps to the nearest symbol with nm
 * (qemu_plugin_insn_symbol cannot: tract's assembly kernels have symbols of size 0). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb; struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
extern void *qemu_plugin_insn_haddr(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr, uint64_t imm);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern void qemu_plugin_outs(const char *string);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define NSLOT 8192
static char *names[NSLOT];
static uint64_t counts[NSLOT];
static int slot_for(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = s; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    int i = h % NSLOT;
    while (names[i] && strcmp(names[i], s) != 0) i = (i + 1) % NSLOT;
    if (!names[i]) names[i] = strdup(s);
    return i;
}
#define NTB (1 << 20)
static uint64_t tb_key[NTB], tb_count[NTB];
static int tb_slot(uint64_t a) {
    uint64_t i = (a * 0x9E3779B97F4A7C15ULL) >> 44;
    while (tb_key[i] && tb_key[i] != a) i = (i + 1) & (NTB - 1);
    tb_key[i] = a;
    return (int)i;
}
static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        char *d = qemu_plugin_insn_disas(insn);
        char mn[64]; int k = 0;
        if (d) { while (d[k] && d[k] != ' ' && d[k] != '\t' && k < 63) { mn[k] = d[k]; k++; } }
        mn[k] = 0;
        if (d && strstr(d, " v") && strchr(d, '.')) { if (k < 60) { mn[k++] = '.'; mn[k++] = 'v'; mn[k] = 0; } }
        free(d);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[slot_for(mn)], 1);
    }
    if (n) {
        uint64_t a = (uint64_t)(uintptr_t)qemu_plugin_insn_haddr(qemu_plugin_tb_get_insn(tb, 0));
        if (a) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &tb_count[tb_slot(a)], n);
    }
}
static int cmp(const void *a, const void *b) {
    uint64_t x = counts[*(const int *)a], y = counts[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}
typedef struct { uint64_t lo, hi, off; char path[256]; } map_t;
static void at_exit(qemu_plugin_id_t id, void *p) {
    static int idx[NSLOT]; int m = 0; uint64_t total = 0; char buf[512];
    for (int i = 0; i < NSLOT; i++) if (names[i]) { total += counts[i]; idx[m++] = i; }
    qsort(idx, m, sizeof(int), cmp);
    snprintf(buf, sizeof buf, "insns: %llu\n", (unsigned long long)total); qemu_plugin_outs(buf);
    for (int j = 0; j < m && j < 400 && counts[idx[j]]; j++) {
        snprintf(buf, sizeof buf, "mn %-16s %llu\n", names[idx[j]], (unsigned long long)counts[idx[j]]);
        qemu_plugin_outs(buf);
    }
    static map_t maps[4096]; int nm = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    while (f && nm < 4096 && fgets(line, sizeof line, f)) {
        unsigned long long lo, hi, off; char perm[8], path[512] = "";
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %511s", &lo, &hi, perm, &off, path) >= 4 && path[0] == '/') {
            maps[nm].lo = lo; maps[nm].hi = hi; maps[nm].off = off;
            snprintf(maps[nm].path, sizeof maps[nm].path, "%s", path); nm++;
        }
    }
    if (f) fclose(f);
    for (int i = 0; i < NTB; i++) {
        if (!tb_key[i] || !tb_count[i]) continue;
        const char *path = "?"; uint64_t off = tb_key[i];
        for (int j = 0; j < nm; j++)
            if (tb_key[i] >= maps[j].lo && tb_key[i] < maps[j].hi) { path = maps[j].path; off = tb_key[i] - maps[j].lo + maps[j].off; break; }
        snprintf(buf, sizeof buf, "tb %s %llx %llu\n", path, (unsigned long long)off, (unsigned long long)tb_count[i]);
        qemu_plugin_outs(buf);
    }
}
__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
C
gcc -O2 -shared -fPIC -o "$OUT/libinsncount-sym.so" "$OUT/insncount-sym.c"

# --- the audio: the demo passages, 12 s and 78 s at 22050 Hz (as bench/run.sh --aarch64) ----
[ -f "$DIR/wav/long.wav" ] || "$py" - "$DIR/wav" <<'PY'
import sys, numpy as np, soundfile as sf
from pathlib import Path
out = Path(sys.argv[1])
clips = sorted(Path("device/assets/demo").glob("*.mp3"))
audio = np.concatenate([sf.read(str(c), dtype="float32", always_2d=True)[0].mean(axis=1) for c in clips])
sf.write(out / "short.wav", audio[: 12 * 22050], 22050, subtype="PCM_16")
sf.write(out / "long.wav", audio[: 78 * 22050], 22050, subtype="PCM_16")
PY

CANDIDATES=${CANDIDATES:-$(cd "$DIR" && for d in */metadata.json; do dirname "$d"; done)}

count() {  # cand cpu precision file; qemu without -L (see ../shared/docs/int8.md)
  local cand=$1 cpu=$2 precision=$3 file=$4 flag=()
  local base="$OUT/$cand-$cpu-$precision-$file"
  [ "$precision" = int8 ] && flag=(--int8)
  if [ -s "$base.count" ] && grep -q '^insns:' "$base.count"; then return 0; fi  # resumable
  EARSHOT_CONFIG= qemu-aarch64 -cpu "$cpu" -plugin "$OUT/libinsncount-sym.so" -d plugin \
    "$BIN" analyze "$DIR/wav/$file.wav" --json --model "$DIR/$cand" "${flag[@]}" \
    >"$base.json" 2>"$base.count.tmp"
  mv "$base.count.tmp" "$base.count"
  echo "counted $cand $cpu $precision $file" >&2
}
export -f count
export OUT DIR BIN

# order: the A72 pair first for every candidate, then the A76 (the f32 count should not depend
# on the CPU model under qemu: tract picks f32 kernels by CPU part id, Generic under qemu)
jobs_list=()
for cpu in $CPUS; do
  for cand in $CANDIDATES; do
    for precision in $PRECISIONS; do
      for file in short long; do jobs_list+=("$cand $cpu $precision $file"); done
    done
  done
done
printf '%s\n' "${jobs_list[@]}" | xargs -P "$JOBS" -L 1 bash -c 'count "$@"' _

# --- the summary -------------------------------------------------------------------------
"$py" - "$DIR" <<'PY'
import bisect, json, re, subprocess, sys
from collections import defaultdict
from pathlib import Path
d = Path(sys.argv[1]); out = d / "counts"
cands = json.loads((d / "candidates.json").read_text()) if (d / "candidates.json").exists() else {}
_syms = {}

def symbols(path):
    """Sorted (address, name) of a mapped ELF file's code symbols (.symtab, else .dynsym);
    the text segments here map file offset = address (checked with readelf -l)."""
    if path not in _syms:
        rows = []
        for extra in ([], ["-D"]):
            try:
                r = subprocess.run(["aarch64-linux-gnu-nm", "-n", "--defined-only", *extra, path],
                                   capture_output=True, text=True, check=True).stdout
            except Exception:
                continue
            for line in r.splitlines():
                f = line.split()
                if len(f) == 3 and f[1] in "TtWwi" and not f[2].startswith((".", "$")):
                    rows.append((int(f[0], 16), f[2]))
            if rows:
                break
        rows.sort()
        # local labels inside tract's assembly kernels (non_linear_addc_i32, once per kernel)
        # count for the kernel they sit in
        seen = defaultdict(int)
        for _, n in rows:
            seen[n] += 1
        for i in range(1, len(rows)):
            if seen[rows[i][1]] > 1 and not rows[i][1].startswith("_ZN") or rows[i][1].startswith("non_linear"):
                rows[i] = (rows[i][0], rows[i - 1][1])
        _syms[path] = ([a for a, _ in rows], [n for _, n in rows])
    return _syms[path]

def symbol_of(path, off):
    addrs, names = symbols(path)
    i = bisect.bisect_right(addrs, off) - 1
    lib = path.rsplit("/", 1)[-1]
    name = names[i] if i >= 0 else "?"
    return name if lib == "earshotd" else f"{lib}:{name}"

def parse(base):
    text = (out / f"{base}.count").read_text()
    readings = len(json.loads((out / f"{base}.json").read_text())["windows"])
    insns = int(re.search(r"^insns: (\d+)", text, re.M).group(1))
    mn = {m.group(1): int(m.group(2)) for m in re.finditer(r"^mn (\S+)\s+(\d+)", text, re.M)}
    sym = defaultdict(int)
    for m in re.finditer(r"^tb (\S+) ([0-9a-f]+) (\d+)", text, re.M):
        sym[symbol_of(m.group(1), int(m.group(2), 16))] += int(m.group(3))
    return insns, readings, mn, sym

def demangle(names):
    try:
        r = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
        dem = r.stdout.splitlines()
    except Exception:
        dem = names
    short = []
    for s in dem:
        s = re.sub(r"::h[0-9a-f]{16}$", "", s)
        s = re.sub(r"_0_23_9$", "", s)  # tract-linalg's version suffix on assembly kernels
        short.append(s)
    return short

rows = []
for f in sorted(out.glob("*-short.count")):
    key = f.name[: -len("-short.count")]
    if not (out / f"{key}-long.count").exists():
        continue
    m = re.match(r"(.+)-(cortex-a\d+)-(f32|int8)$", key)
    cand, cpu, prec = m.groups()
    i0, r0, mn0, s0 = parse(f"{key}-short")
    i1, r1, mn1, s1 = parse(f"{key}-long")
    dr = r1 - r0
    per = (i1 - i0) / dr
    # per-reading differences of mnemonics and symbols (start-up cancels here too)
    dmn = {k: (mn1.get(k, 0) - mn0.get(k, 0)) / dr for k in set(mn1) | set(mn0)}
    dsym = {k: (s1.get(k, 0) - s0.get(k, 0)) / dr for k in set(s1) | set(s0)}
    neon = sum(v for k, v in dmn.items() if k.endswith(".v"))
    byte = dmn.get(".byte", 0.0)  # qemu 7.2 cannot disassemble SDOT: it shows as .byte
    names = list(dsym)
    dem = dict(zip(names, demangle(names)))
    kern = {"mmm_i32": 0.0, "mmm_f32": 0.0, "im2col": 0.0, "tract": 0.0}
    for k, v in dsym.items():
        for tag in kern:
            if tag in k:
                kern[tag] += v
        if "arm64simd" in k and "tract" not in k:
            kern["tract"] += v
    top = sorted(dsym.items(), key=lambda kv: -kv[1])[:12]
    rows.append({"candidate": cand, "cpu": cpu, "precision": prec, "readings": [r0, r1],
                 "insns": [i0, i1], "per_reading": per, "neon_share": neon / per,
                 "byte_share": byte / per, "mmm_i32_per_reading": kern["mmm_i32"],
                 "mmm_f32_per_reading": kern["mmm_f32"], "im2col_per_reading": kern["im2col"],
                 "tract_per_reading": kern["tract"],
                 "mnemonics_listed_share": sum(dmn.values()) / per,
                 "symbols_listed_share": sum(dsym.values()) / per,
                 "top_symbols": [[dem[k], v] for k, v in top],
                 "top_mnemonics": sorted(dmn.items(), key=lambda kv: -kv[1])[:16],
                 "macs_per_reading": cands.get(cand, {}).get("macs_per_reading"),
                 "parameters": cands.get(cand, {}).get("parameters")})
(out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")

# markdown: one row per candidate and CPU (counts/table.md)
by = {(r["candidate"], r["cpu"], r["precision"]): r for r in rows}
order = sorted({r["candidate"] for r in rows}, key=lambda c: -(cands.get(c, {}).get("macs_per_reading") or 0))
M = lambda r, k: f"{r[k] / 1e6:.2f}" if r else "-"
P = lambda r, k: f"{100 * r[k]:.0f} %" if r else "-"
md = ["| candidate | MAC/reading | parameters | im2col elements/reading | CPU | f32 M insn/reading | int8 M insn/reading "
      "| int8/f32 | tract part f32 / int8 (M) | NEON f32 / int8 | SDOT (.byte) int8 | f32 mmm kernel M | i32 mmm kernel M "
      "| im2col f32 / int8 (M) |", "|" + "---|" * 14]
for c in order:
    info = cands.get(c, {})
    packed = sum(l["packed_elements_per_reading"] for l in info.get("layers", []))
    for cpu in ("cortex-a72", "cortex-a76"):
        f, q = by.get((c, cpu, "f32")), by.get((c, cpu, "int8"))
        if not (f or q):
            continue
        ratio = f"{q['per_reading'] / f['per_reading']:.3f}" if f and q else "-"
        md.append(f"| {c} | {(info.get('macs_per_reading') or 0) / 1e6:.2f} M | {info.get('parameters') or 0:,} | "
                  f"{packed / 1e6:.3f} M | {cpu[7:].upper()} | {M(f, 'per_reading')} | {M(q, 'per_reading')} | {ratio} | "
                  f"{M(f, 'tract_per_reading')} / {M(q, 'tract_per_reading')} | {P(f, 'neon_share')} / {P(q, 'neon_share')} | "
                  f"{P(q, 'byte_share')} | {M(f, 'mmm_f32_per_reading')} | {M(q, 'mmm_i32_per_reading')} | "
                  f"{M(f, 'im2col_per_reading')} / {M(q, 'im2col_per_reading')} |")
md.append("")
for r in rows:
    md.append(f"- {r['candidate']}, {r['cpu']}, {r['precision']}: " +
              "; ".join(f"{n[:80]} {v / 1e6:.2f}" for n, v in r["top_symbols"][:8]))
(out / "table.md").write_text("\n".join(md) + "\n")
print(f"{'candidate':<12}{'cpu':<12}{'prec':<6}{'M insn/reading':>15}{'NEON':>7}{'.byte':>7}"
      f"{'i32 mmm M':>10}{'f32 mmm M':>10}{'im2col M':>10}{'tract M':>9}")
for r in rows:
    print(f"{r['candidate']:<12}{r['cpu']:<12}{r['precision']:<6}{r['per_reading']/1e6:>15.2f}"
          f"{100*r['neon_share']:>6.0f}%{100*r['byte_share']:>6.0f}%{r['mmm_i32_per_reading']/1e6:>10.2f}"
          f"{r['mmm_f32_per_reading']/1e6:>10.2f}{r['im2col_per_reading']/1e6:>10.2f}{r['tract_per_reading']/1e6:>9.2f}")
PY

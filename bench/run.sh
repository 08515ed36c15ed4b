#!/usr/bin/env bash
# earshotd benchmarks, side by side in one run on this machine:
#   - per-hop latency of tract f32 / int8 (criterion, device/benches/pipeline.rs)
#     against onnxruntime and PyTorch on the same inputs and one thread (bench/compare.py)
#   - multiply-accumulates per hop and per window, and the plan's matmul kernels
#   - real-time factor and peak RSS of `earshotd analyze` on a 5-minute file
#   - CPU use and peak RSS of the paced demo (the whole daemon) over DEMO_SECONDS
# Usage: bash bench/run.sh   (env: DEMO_SECONDS=30, EARSHOT_DATA=../shared/data)
#        bash bench/run.sh --aarch64   guest instructions per reading on a Pi 4 / Pi 5
#                                      (qemu-aarch64 + ../shared/tools/qemu-insncount)
#                                      and earshotd's peak resident memory under qemu
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--aarch64" ]; then
  # The release build the .deb ships, counted under qemu-user as a Cortex-A72
  # (Pi 4, no dot product) and a Cortex-A76 (Pi 5, dot product). Per reading:
  # (count(long file) - count(short file)) / (readings(long) - readings(short)),
  # so start-up (model load and optimisation) cancels. The input is a 22050 Hz
  # wav (no mp3 decoding: about 3 M more per reading, ../shared/docs/int8.md),
  # and in f32 on the A72 also 44.1 and 48 kHz wavs, what microphones give: the
  # resampler's cost. Instructions, not cycles; no real Pi was timed.
  OUT=${CARGO_TARGET_DIR:-target}/bench-aarch64
  TOOL=${EARSHOT_INSNCOUNT:-../shared/tools/qemu-insncount}
  PROFILE=${EARSHOT_PI_PROFILE:-release}
  mkdir -p "$OUT"
  # EARSHOTD_AARCH64: count a binary built before (e.g. the one in a .deb).
  BIN=${EARSHOTD_AARCH64:-${CARGO_TARGET_DIR:-target}/pi/$PROFILE/earshotd}
  [ -n "${EARSHOTD_AARCH64:-}" ] || bash scripts/build-pi.sh --profile "$PROFILE"
  command -v qemu-aarch64 >/dev/null || {
    echo "bench: qemu-aarch64 missing: apt-get install qemu-user" >&2; exit 1; }
  [ -f "$TOOL/insncount.c" ] || { echo "bench: $TOOL/insncount.c not found (set EARSHOT_INSNCOUNT)" >&2; exit 1; }
  gcc -O2 -shared -fPIC -o "$OUT/libinsncount.so" "$TOOL/insncount.c"
  py=python3; [ -x .venv/bin/python ] && py=.venv/bin/python
  # Real music: the demo passages, decoded once; short = 12 s, long = 78 s.
  "$py" - "$OUT" <<'PY'
import sys, numpy as np, soundfile as sf
from pathlib import Path
out = Path(sys.argv[1])
clips = sorted(Path("device/assets/demo").glob("*.mp3"))
audio = np.concatenate([sf.read(str(c), dtype="float32", always_2d=True)[0].mean(axis=1) for c in clips])
assert len(audio) >= 78 * 22050, len(audio) / 22050
sf.write(out / "short.wav", audio[: 12 * 22050], 22050, subtype="PCM_16")
sf.write(out / "long.wav", audio[: 78 * 22050], 22050, subtype="PCM_16")
from scipy.signal import resample_poly
for rate, up, down in ((44100, 2, 1), (48000, 320, 147)):
    hi = resample_poly(audio[: 78 * 22050], up, down).astype("float32")
    sf.write(out / f"short{rate // 1000}.wav", hi[: 12 * rate], rate, subtype="PCM_16")
    sf.write(out / f"long{rate // 1000}.wav", hi, rate, subtype="PCM_16")
PY
  count() {  # cpu precision file -> "insns readings neon_in_top40 top40"
    local cpu=$1 precision=$2 file=$3
    qemu-aarch64 -cpu "$cpu" -plugin "$OUT/libinsncount.so" -d plugin "$BIN" analyze "$OUT/$file" --json --precision "$precision" \
      >"$OUT/$cpu-$precision-$file.json" 2>"$OUT/$cpu-$precision-$file.count"
    "$py" - "$OUT/$cpu-$precision-$file.json" "$OUT/$cpu-$precision-$file.count" <<'PY'
import json, re, sys
readings = len(json.load(open(sys.argv[1]))["windows"])
text = open(sys.argv[2]).read()
insns = int(re.search(r"^insns: (\d+)", text, re.M).group(1))
mn = [(m.group(1), int(m.group(2))) for m in re.finditer(r"^mn (\S+)\s+(\d+)", text, re.M)]
# qemu 7.2 cannot disassemble the dot-product instructions (SDOT): they show as `.byte`.
print(insns, readings, sum(c for n, c in mn if n.endswith(".v")), sum(c for _, c in mn),
      sum(c for n, c in mn if n == ".byte"))
PY
  }
  {
    echo "guest instructions per reading (hop 990 ms, window 10 s), earshotd analyze, 22050 Hz wav"
    printf '%-9s %-11s %12s %8s %15s %16s\n' precision cpu "M/reading" "vs f32" "NEON in top 40" "SDOT? (.byte)"
  } >"$OUT/table.txt"
  for cpu in cortex-a72 cortex-a76; do
    f32=""
    for precision in f32 int8; do
      read -r i0 r0 _ _ _ < <(count "$cpu" "$precision" short.wav)
      read -r i1 r1 n1 t1 b1 < <(count "$cpu" "$precision" long.wav)
      per=$(awk -v a="$i0" -v b="$i1" -v c="$r0" -v d="$r1" 'BEGIN { printf "%.2f", (b - a) / (d - c) / 1e6 }')
      [ -n "$f32" ] || f32=$per
      [ "$cpu/$precision" != cortex-a72/f32 ] || f32_a72=$per
      printf '%-9s %-11s %12s %8s %15s %16s\n' "$precision" "$cpu" "$per" \
        "$(awk -v x="$per" -v f="$f32" 'BEGIN { printf "%.2fx", x / f }')" \
        "$(awk -v n="$n1" -v t="$t1" 'BEGIN { printf "%.0f %%", 100 * n / t }')" \
        "$(awk -v n="$b1" -v t="$t1" 'BEGIN { printf "%.0f %%", 100 * n / t }')" >>"$OUT/table.txt"
    done
  done
  for rate in 44 48; do
    read -r i0 r0 _ _ _ < <(count cortex-a72 f32 "short$rate.wav")
    read -r i1 r1 n1 t1 b1 < <(count cortex-a72 f32 "long$rate.wav")
    per=$(awk -v a="$i0" -v b="$i1" -v c="$r0" -v d="$r1" 'BEGIN { printf "%.2f", (b - a) / (d - c) / 1e6 }')
    printf '%-9s %-11s %12s %8s %15s %16s\n' "f32 $rate" cortex-a72 "$per" \
      "$(awk -v x="$per" -v f="$f32_a72" 'BEGIN { printf "%.2fx", x / f }')" \
      "$(awk -v n="$n1" -v t="$t1" 'BEGIN { printf "%.0f %%", 100 * n / t }')" "" >>"$OUT/table.txt"
  done
  # Peak resident memory of earshotd itself under qemu (without the plugin), sampled.
  for precision in f32 int8; do
    qemu-aarch64 -cpu cortex-a72 "$BIN" analyze "$OUT/long48.wav" --json --precision "$precision" >/dev/null 2>&1 &
    pid=$!; peak="0 0 0"
    while kill -0 "$pid" 2>/dev/null; do
      now=$(python3 bench/qemu_guest_rss.py "$pid" 2>/dev/null) || break
      [ "${now%% *}" -le "${peak%% *}" ] || peak=$now
      sleep 0.2
    done
    wait "$pid"
    read -r g a t <<<"$peak"
    printf 'peak RSS %-5s analyze 48 kHz, cortex-a72: earshotd %5.1f MB (anonymous %4.1f MB; the rest is its code, read by qemu), qemu in all %5.1f MB\n' \
      "$precision" "$(awk -v x="$g" 'BEGIN { print x / 1024 }')" "$(awk -v x="$a" 'BEGIN { print x / 1024 }')" "$(awk -v x="$t" 'BEGIN { print x / 1024 }')" >>"$OUT/table.txt"
  done
  echo "(readings: $r0 short, $r1 long; f32 44 / 48: the same music as a 44.1 / 48 kHz wav, resampled by earshotd; NEON: share of the 40 most frequent mnemonics that are vector forms; raw counts in $OUT)" >>"$OUT/table.txt"
  cat "$OUT/table.txt"
  exit 0
fi
OUT=target/bench
DATA=${EARSHOT_DATA:-../shared/data}
DEMO_SECONDS=${DEMO_SECONDS:-30}
mkdir -p "$OUT"
BIN=target/release/earshotd

echo "== building (release)" >&2
cargo build --release --quiet -p earshot-device

echo "== criterion: frontend, tract streaming hop and whole window" >&2
EARSHOT_BENCH_INFO="$PWD/$OUT/info.json" cargo bench --quiet -p earshot-device --bench pipeline -- --noplot \
  >"$OUT/criterion.txt" 2>&1

echo "== onnxruntime and PyTorch on the same inputs" >&2
python3 bench/compare.py >"$OUT/compare.json"

echo "== analyze: real-time factor and peak RSS" >&2
python3 - "$DATA" "$OUT/long.wav" <<'EOF'
import sys, numpy as np, soundfile as sf
from pathlib import Path
data, dest = Path(sys.argv[1]), sys.argv[2]
clips = sorted((data / "soundtracks" / "audio").glob("*.mp3"))[:20]
audio = np.concatenate([sf.read(str(c), dtype="float32", always_2d=True)[0].mean(axis=1) for c in clips])
sf.write(dest, audio, 22050, subtype="PCM_16")
print(f"{dest}: {len(clips)} clips, {len(audio) / 22050:.1f} s", file=sys.stderr)
EOF
for precision in f32 int8; do
  /usr/bin/time -v "$BIN" analyze "$OUT/long.wav" --json --precision "$precision" >"$OUT/analyze_$precision.json" 2>"$OUT/time_analyze_$precision.txt"
done
/usr/bin/time -v "$BIN" analyze "$DATA/soundtracks/audio/001.mp3" --json >"$OUT/analyze_mp3.json" 2>"$OUT/time_analyze_mp3.txt"

echo "== paced demo for ${DEMO_SECONDS} s per precision: CPU and RSS of the whole daemon" >&2
for precision in f32 int8; do
  rm -f "$OUT/bench.sock"
  "$BIN" run --demo --listen 127.0.0.1:0 --socket "$OUT/bench.sock" --log-file "$OUT/demo_$precision.log" --precision "$precision" &
  pid=$!
  sleep 3  # model load and first readings out of the way
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  t0=$(date +%s.%N)
  sleep "$DEMO_SECONDS"
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  t1=$(date +%s.%N)
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" || true
  echo "{\"ticks\": $((u1 + s1 - u0 - s0)), \"clk_tck\": $(getconf CLK_TCK), \"seconds\": $(echo "$t1 - $t0" | bc -l), \"vmhwm_kb\": $hwm}" \
    >"$OUT/demo_$precision.json"
done

python3 - "$OUT" <<'EOF'
import json, re, sys
from pathlib import Path
out = Path(sys.argv[1])
crit = Path("target/criterion/hop")
def crit_ms(name):
    p = crit / name / "new" / "estimates.json"
    return json.loads(p.read_text())["median"]["point_estimate"] / 1e6
def timev(path):
    t = Path(path).read_text()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", t)
    h, m, s = wall.groups()
    wall_s = (int(h) if h else 0) * 3600 + int(m) * 60 + float(s)
    cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", t).group(1)) + float(re.search(r"System time \(seconds\): ([\d.]+)", t).group(1))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
    return wall_s, cpu, rss
info = json.loads((out / "info.json").read_text())
py = json.loads((out / "compare.json").read_text())
hop, win = info["stream_input_frames"], info["window_frames"]
print(f"\nearshotd benchmarks ({info['model_id']}), one thread, median latency in ms")
print(f"{'':<26}{'pulse 31 frames':>18}{'1x'+str(hop)+'x137':>16}{'1x'+str(win)+'x137':>16}")
rows = [
    ("tract f32", crit_ms("tract_f32_stream"), crit_ms("tract_f32_93"), crit_ms("tract_f32_window")),
    ("tract int8", crit_ms("tract_int8_stream"), crit_ms("tract_int8_93"), crit_ms("tract_int8_window")),
    ("onnxruntime f32", None, py["ort_f32_stream_ms"], py["ort_f32_window_ms"]),
    ("onnxruntime int8", None, py["ort_int8_stream_ms"], py["ort_int8_window_ms"]),
    ("pytorch f32 (eager)", None, py["torch_f32_stream_ms"], py["torch_f32_window_ms"]),
]
for name, a, b, c in rows:
    a = f"{a:.3f}" if a is not None else "-"
    print(f"{name:<26}{a:>18}{b:>16.3f}{c:>16.3f}")
print("(pulse: what earshotd runs per reading: 31 new frames through tract's pulsed network, + head;\n"
      f" 1x{hop}x137: the newest 31 + 62 frames, the least a stateless runtime must run per reading)")
print(f"front end, one hop (31 frames, 989.8 ms of audio): {crit_ms('frontend'):.3f} ms")
w, h, p = info["macs_per_window"], info["macs_per_hop"], info["macs_per_pulse"]
print(f"\nmultiply-accumulates per reading: whole window ({win} frames) {w/1e6:.2f} M; "
      f"newest {hop} frames {h/1e6:.2f} M (x{w/h:.1f} less); "
      f"tract pulse of 31 frames {p/1e6:.2f} M (x{w/p:.1f} less, saves {100*(1-p/w):.0f} %)")
print(f"matmul kernels f32:  {', '.join(sorted(set(info['kernels_f32'])))}")
print(f"matmul kernels int8: {', '.join(sorted(set(info['kernels_int8'])))}")
print("\nearshotd analyze (as fast as possible)")
for name, tag in [("f32, 5 min wav", "f32"), ("int8, 5 min wav", "int8"), ("f32, one mp3 clip", "mp3")]:
    wall, cpu, rss = timev(out / f"time_analyze_{tag}.txt")
    audio_s = json.loads((out / f"analyze_{tag}.json").read_text())["seconds"]
    print(f"  {name:<18} wall {wall:6.2f} s  cpu {cpu:6.2f} s  real-time factor {audio_s / wall:7.0f}x  peak RSS {rss / 1024:6.1f} MiB")
print("\nearshotd run --demo, paced (whole daemon: synthesis, front end, model, explain, server)")
for p in ["f32", "int8"]:
    d = json.loads((out / f"demo_{p}.json").read_text())
    cpu = d["ticks"] / d["clk_tck"] / d["seconds"] * 100
    print(f"  {p:<5} CPU {cpu:5.2f} % of one core over {d['seconds']:.0f} s   peak RSS {d['vmhwm_kb'] / 1024:.1f} MiB")
print(f"\nversions: {py['versions']}")
EOF

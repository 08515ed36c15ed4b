#!/usr/bin/env bash
# Soak: earshotd with every output on (stream server with consoles reading it,
# stdout, MQTT to a local mosquitto, OSC, history). Two ways:
#   SOAK_MINUTES=10 bash bench/soak.sh       the demo, in real time, for 10 min
#   SOAK_AUDIO_HOURS=24 bash bench/soak.sh   24 h of music (the demo passages,
#       looped) through the file input as fast as it goes (goal: >= 50x real
#       time), with a real console in tmux and a stream reader attached
# Reports readings (against those the audio makes, in the second mode),
# sequence gaps, resident memory over time (first vs last quarter), threads
# and open files at start and end, and output states; exits non-zero on a
# gap, a lost reading, a crash, or memory that grows by more than
# SOAK_MAX_GROWTH_MB (default 1 for the audio soak, 4 for the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${SOAK_AUDIO_HOURS:-}
minutes=${SOAK_MINUTES:-10}
if [ -n "$hours" ]; then max_growth=${SOAK_MAX_GROWTH_MB:-1}; else max_growth=${SOAK_MAX_GROWTH_MB:-4}; fi
cargo build --release --quiet -p earshot-device -p earshot-host
bin=${CARGO_TARGET_DIR:-target}/release/earshotd
console=${CARGO_TARGET_DIR:-target}/release/earshot
work=$(mktemp -d)
tmux_sock="soak-$$"
trap 'tmux -L "$tmux_sock" kill-server 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosq" ] || { echo "soak: mosquitto missing (bash scripts/setup.sh installs it)" >&2; exit 1; }
port=$((20000 + RANDOM % 20000))
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$work/mosq.conf"
"$mosq" -c "$work/mosq.conf" >/dev/null 2>&1 &
tcp=127.0.0.1:$((port + 1))
cat >"$work/earshot.toml" <<TOML
[server]
tcp = "$tcp"
unix_socket = ""
[mqtt]
url = "mqtt://127.0.0.1:$port"
device_id = "soak"
[osc]
targets = ["127.0.0.1:$((port + 2))"]
[history]
path = "$work/history.sqlite"
TOML
sleep 0.5
started=$(date +%s.%N)
if [ -n "$hours" ]; then
  # 16-bit mono 22050 Hz wav on a pipe: the header says `hours`, the body
  # loops the four demo passages (decoded once) until it is full.
  [ -x .venv/bin/python ] || { echo "soak: .venv missing (bash scripts/setup.sh makes it)" >&2; exit 1; }
  .venv/bin/python - "$hours" device/assets/demo/[1-4]-*.mp3 2>"$work/gen.log" <<'PY' |
import struct, sys
import numpy as np
import soundfile as sf
hours, paths = float(sys.argv[1]), sys.argv[2:]
loop = np.concatenate([sf.read(p, dtype="int16")[0] for p in paths]).tobytes()
total = int(hours * 3600 * 22050) * 2
out = sys.stdout.buffer
out.write(b"RIFF" + struct.pack("<I", 36 + total) + b"WAVEfmt " +
          struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16) + b"data" + struct.pack("<I", total))
left = total
while left > 0:
    chunk = loop[: min(left, len(loop))]
    out.write(chunk)
    left -= len(chunk)
out.flush()
PY
    EARSHOT_CONFIG= "$bin" run --file /dev/stdin --stdout --config "$work/earshot.toml" \
      >"$work/readings.ndjson" 2>"$work/daemon.log" &
else
  EARSHOT_CONFIG= "$bin" run --demo --stdout --config "$work/earshot.toml" \
    >"$work/readings.ndjson" 2>"$work/daemon.log" &
fi
daemon=$!
for _ in $(seq 100); do grep -q "listening on tcp" "$work/daemon.log" && break; sleep 0.1; done
# a console's worth of reading: a client that reads the stream to the end
python3 - "$tcp" >/dev/null 2>&1 <<'PY' &
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
while s.recv(65536):
    pass
PY
# and the console itself, in a real terminal
if command -v tmux >/dev/null; then
  tmux -L "$tmux_sock" new-session -d -x 80 -y 24 "$console --connect $tcp"
fi
procs() { [ -r "/proc/$daemon/status" ] || return 1; echo "$(awk '/^Threads/ {print $2}' "/proc/$daemon/status") $(ls "/proc/$daemon/fd" | wc -l)"; }
sleep 2
at_start=$(procs)
: >"$work/rss"
end=$(($(date +%s) + minutes * 60))
while if [ -n "$hours" ]; then kill -0 "$daemon" 2>/dev/null; else [ "$(date +%s)" -lt "$end" ]; fi; do
  # (the audio soak ends when the audio does: the loop's test sees that)
  [ -n "$hours" ] || kill -0 "$daemon" 2>/dev/null ||
    { echo "soak: earshotd died" >&2; tail -20 "$work/daemon.log" >&2; exit 1; }
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status" 2>/dev/null || true)
  [ -z "$rss_kb" ] || echo "$(date +%s) $rss_kb" >>"$work/rss"
  now=$(procs 2>/dev/null || true)
  [ -z "$now" ] || at_end=$now
  sleep 5
done
if [ -n "$hours" ]; then
  wait "$daemon" || { echo "soak: earshotd exited non-zero" >&2; tail -20 "$work/daemon.log" >&2; exit 1; }
else
  at_end=$(procs)
  kill -TERM "$daemon"; wait "$daemon" || { echo "soak: earshotd exited non-zero" >&2; exit 1; }
fi
wall=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
python3 - "$work" "$max_growth" "${hours:-0}" "$wall" "$at_start" "${at_end:-?}" <<'PY'
import json, sys
from pathlib import Path
work, max_growth, hours, wall = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
seqs, states, stream_ms = [], {}, []
for line in (work / "readings.ndjson").read_text().splitlines():
    m = json.loads(line)
    if m.get("type") != "reading":
        continue
    seqs.append(m["seq"])
    stream_ms.append(m["stream_ms"])
    for o in m["health"].get("outputs", []):
        states[o["name"]] = (o["state"], o["errors"], o["dropped"])
gaps = sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
rss = [int(l.split()[1]) / 1024 for l in (work / "rss").read_text().split("\n") if l.strip()]
q = max(len(rss) // 4, 1)
first, last = sum(rss[:q]) / q, sum(rss[-q:]) / q
print(f"readings {len(seqs)}, sequence gaps {gaps}")
bad = gaps > 0 or last - first > max_growth
if hours:
    # One reading per hop of 31 frames of 704 samples at 22050 Hz (docs/protocol.md),
    # from the first full receptive field to the end of the audio.
    hop_ms = 31 * 704 / 22.05
    audio_ms = hours * 3.6e6
    expected = round((stream_ms[-1] - stream_ms[0]) / hop_ms) + 1
    print(f"audio {hours:g} h in {wall:.0f} s wall: {audio_ms / 1000 / wall:.0f}x real time; "
          f"readings from {stream_ms[0] / 1000:.1f} s to {stream_ms[-1] / 3.6e6:.4f} h: "
          f"expected {expected}, made {len(seqs)}")
    bad = bad or len(seqs) != expected or audio_ms - stream_ms[-1] > 2 * hop_ms or audio_ms / 1000 / wall < 50
print(f"RSS MB: first quarter {first:.1f}, last quarter {last:.1f}, max {max(rss):.1f} ({len(rss)} samples)")
print(f"threads, open files: at start {sys.argv[5]}, at the end {sys.argv[6]}")
print("outputs at the end:", ", ".join(f"{n} {s} ({e} errors, {d} dropped)" for n, (s, e, d) in states.items()))
# A stream reader may fall behind a file read at 50x (it is dropped, not waited
# on): "dropped" is reported, not a failure. Every output must end "ok".
bad = bad or any(s != "ok" for s, _, _ in states.values())
sys.exit(1 if bad else 0)
PY

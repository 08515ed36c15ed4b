#!/usr/bin/env bash
# Soak: earshotd on its demo with every output on (stream server with a console
# reading it, stdout, MQTT to a local mosquitto, OSC, history), for SOAK_MINUTES.
# Reports readings, sequence gaps, resident memory over time (first vs last
# quarter) and output states; exits non-zero on a gap, a crash, or memory that
# grows by more than SOAK_MAX_GROWTH_MB.
# Usage: bash bench/soak.sh   (env: SOAK_MINUTES=10, SOAK_MAX_GROWTH_MB=4)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${SOAK_MINUTES:-10}
max_growth=${SOAK_MAX_GROWTH_MB:-4}
cargo build --release --quiet -p earshot-device
bin=${CARGO_TARGET_DIR:-target}/release/earshotd
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
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
"$bin" run --demo --stdout --config "$work/earshot.toml" >"$work/readings.ndjson" 2>"$work/daemon.log" &
daemon=$!
sleep 2
# a console's worth of reading: a client that reads the stream to the end
python3 - "$tcp" >/dev/null 2>&1 <<'PY' &
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
while s.recv(65536):
    pass
PY
: >"$work/rss"
end=$(($(date +%s) + minutes * 60))
while [ "$(date +%s)" -lt "$end" ]; do
  kill -0 "$daemon" 2>/dev/null || { echo "soak: earshotd died" >&2; tail -20 "$work/daemon.log" >&2; exit 1; }
  echo "$(date +%s) $(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")" >>"$work/rss"
  sleep 10
done
kill -TERM "$daemon"; wait "$daemon" || { echo "soak: earshotd exited non-zero" >&2; exit 1; }
python3 - "$work" "$max_growth" <<'PY'
import json, sys
from pathlib import Path
work, max_growth = Path(sys.argv[1]), float(sys.argv[2])
seqs, states = [], {}
for line in (work / "readings.ndjson").read_text().splitlines():
    m = json.loads(line)
    if m.get("type") != "reading":
        continue
    seqs.append(m["seq"])
    for o in m["health"].get("outputs", []):
        states[o["name"]] = (o["state"], o["errors"], o["dropped"])
gaps = sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
rss = [int(l.split()[1]) / 1024 for l in (work / "rss").read_text().split("\n") if l.strip()]
q = max(len(rss) // 4, 1)
first, last = sum(rss[:q]) / q, sum(rss[-q:]) / q
print(f"readings {len(seqs)}, sequence gaps {gaps}")
print(f"RSS MB: first quarter {first:.1f}, last quarter {last:.1f}, max {max(rss):.1f} ({len(rss)} samples)")
print("outputs at the end:", ", ".join(f"{n} {s} ({e} errors, {d} dropped)" for n, (s, e, d) in states.items()))
bad = gaps > 0 or last - first > max_growth or any(s not in ("ok",) for s, _, _ in states.values())
sys.exit(1 if bad else 0)
PY

#!/usr/bin/env bash
# The main job on its embedded default: the daemon on its built-in demo music
# (device/assets/demo/ATTRIBUTION.md), and the console showing it. Quit the
# console with q; the daemon stops too. The log names each passage as it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-python
cargo build --quiet -p earshot-device -p earshot-host  # dev profile: dependencies are optimised (Cargo.toml)
sock="${XDG_RUNTIME_DIR:-/tmp}/earshot-demo-$$.sock"
# No config (not an installed /etc/earshot/earshot.toml: the demo must not
# drive a venue's lights or MQTT) and no TCP port (an installed service has 7878).
EARSHOT_CONFIG= ./target/debug/earshotd run --demo --listen "" --socket "$sock" --log-file /tmp/earshotd-demo.log &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -f "$sock"' EXIT
./target/debug/earshot --socket "$sock"

#!/usr/bin/env bash
# Installs what earshot needs to build and test on Debian, as root or as a user
# with sudo. Idempotent: installs only what is missing.
#   bash scripts/setup.sh               Debian packages + Python test environment (.venv)
#   bash scripts/setup.sh --no-python   Debian packages only (enough for the demo)
set -euo pipefail
cd "$(dirname "$0")/.."
python=1
[ "${1:-}" = "--no-python" ] && python=0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "setup: missing Debian packages must be installed as root, and sudo is not installed." >&2
  echo "       Run this script as root once (su -c 'bash scripts/setup.sh'), or install sudo." >&2
  exit 1
fi

# dpkg -s alone also succeeds for removed packages whose config files remain.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }
need=()
# The native ALSA headers: a cross build's libasound2-dev:arm64 does not count
# (apt-get installs the native one under the plain name).
arch=$(dpkg --print-architecture 2>/dev/null || true)
installed "libasound2-dev${arch:+:$arch}" || need+=(libasound2-dev)
for pkg in pkg-config tmux procps; do  # procps: pkill in the e2e test
  installed "$pkg" || need+=("$pkg")
done
if [ "$python" -eq 1 ]; then
  # The tests talk to a real MQTT broker (they start their own on a spare port).
  installed mosquitto || need+=(mosquitto)
  command -v python3 >/dev/null || need+=(python3)
  # Debian's python3 lacks venv (ensurepip) until python3-venv is installed.
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  # env: with as_root empty, a bare VAR=value after it would be run as a command.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

command -v cargo >/dev/null || {
  echo "setup: cargo not found: install Rust stable with rustup (https://rustup.rs), then run this again." >&2
  exit 1
}

if [ "$python" -eq 1 ]; then
  # A virtual environment: Debian's system Python refuses pip installs (PEP 668),
  # and the tests must not depend on what else is installed system-wide.
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r models/train/requirements-ci.txt
fi

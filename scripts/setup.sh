#!/usr/bin/env bash
# Installs what earshot needs to build and test on Debian (run as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
dpkg -s libasound2-dev >/dev/null 2>&1 || need+=(libasound2-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v tmux >/dev/null || need+=(tmux)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust stable with rustup (https://rustup.rs)"; exit 1; }
python3 -m pip install -q --root-user-action=ignore -r models/train/requirements-ci.txt

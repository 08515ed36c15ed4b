#!/usr/bin/env bash
# CI only (root, disposable machine): proves that scripts/setup.sh really installs
# what it needs, first as root, then as an ordinary user with sudo, each time on a
# machine from which the packages have been removed. A clean clone on a machine
# that already has them would hide a broken install branch.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "ci-setup-check: run as root on a disposable machine" >&2; exit 1; }
[ -n "${CI_SETUP_CHECK:-}" ] || { echo "ci-setup-check: removes Debian packages; set CI_SETUP_CHECK=1 to confirm" >&2; exit 1; }

native=$(dpkg --print-architecture)
pkgs=("libasound2-dev:$native" tmux python3-venv python3.11-venv mosquitto)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }
remove() {
  env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "${pkgs[@]}" >/dev/null 2>&1 || true
  for p in "libasound2-dev:$native" tmux python3-venv mosquitto; do
    if installed "$p"; then
      echo "ci-setup-check: could not remove $p" >&2; exit 1
    fi
  done
}
expect_installed() {
  for p in "libasound2-dev:$native" pkg-config tmux "$@"; do
    installed "$p" || { echo "ci-setup-check: setup.sh did not install $p" >&2; exit 1; }
  done
}

echo "ci-setup-check: as root, without the packages" >&2
remove
bash scripts/setup.sh --no-python
expect_installed

echo "ci-setup-check: as a user with sudo, without the packages" >&2
command -v sudo >/dev/null || env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null
user=earshot-ci
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
echo "$user ALL=(ALL) NOPASSWD:ALL" >/etc/sudoers.d/earshot-ci
chmod 0440 /etc/sudoers.d/earshot-ci
remove
clone="/home/$user/earshot"
rm -rf "$clone"
git clone -q --no-local . "$clone"
chown -R "$user:$user" "$clone"
# The user sees Debian's python3 and a Rust toolchain on PATH, as a developer would.
cargo_bin="$(dirname "$(command -v cargo)")"
chmod o+x "$(dirname "$cargo_bin")" "$(dirname "$(dirname "$cargo_bin")")" 2>/dev/null || true
sudo -u "$user" -H env PATH="$cargo_bin:/usr/local/bin:/usr/bin:/bin" bash "$clone/scripts/setup.sh"
expect_installed python3-venv mosquitto
sudo -u "$user" -H "$clone/.venv/bin/python" -c 'import numpy, soundfile, onnxruntime, essentia, pytest' ||
  { echo "ci-setup-check: the user's .venv lacks the test packages" >&2; exit 1; }
rm -rf "$clone" /etc/sudoers.d/earshot-ci
echo "ci-setup-check: setup.sh installed everything, as root and as a user with sudo" >&2

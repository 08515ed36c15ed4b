#!/usr/bin/env bash
# Cross-builds earshotd and earshot for a Raspberry Pi 4/5 (aarch64, 64-bit
# Raspberry Pi OS / Debian Bookworm) on a Debian Bookworm x86_64 machine,
# without docker (with docker: `cross build --target aarch64-unknown-linux-gnu`,
# see Cross.toml). Installs what is missing, as root or through sudo:
# Debian's aarch64 gcc and libc, libasound2-dev:arm64 (multi-arch), the rustup
# target.
#
#   bash scripts/build-pi.sh                  release build (what the .deb ships)
#   bash scripts/build-pi.sh --profile pi-ci  CI's quicker build (Cargo.toml)
#   bash scripts/build-pi.sh --tests          also the device crate's unit tests
#                                             (golden vectors; scripts/test-pi.sh)
#
# Stripped binaries land in $CARGO_TARGET_DIR/pi/<profile>/ (default target/).
# Building on Bookworm links against its glibc 2.36, so they run on Bookworm;
# the script checks that no newer symbol version slipped in.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
profile=release
tests=0
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
    --tests) tests=1; shift ;;
    *) echo "build-pi: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "build-pi: missing packages must be installed as root, and sudo is not installed" >&2
  exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "build-pi: adding the arm64 architecture to dpkg (for libasound2-dev:arm64)" >&2
  "${as_root[@]}" dpkg --add-architecture arm64
  updated=0
fi
need=()
for pkg in gcc-aarch64-linux-gnu libc6-dev-arm64-cross libasound2-dev:arm64 pkg-config file; do
  installed "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ] || [ "${updated:-1}" -eq 0 ]; then
  echo "build-pi: installing ${need[*]:-nothing new}" >&2
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  [ ${#need[@]} -eq 0 ] ||
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "build-pi: cargo not found: install Rust stable with rustup" >&2; exit 1; }
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  command -v rustup >/dev/null || {
    echo "build-pi: the $TARGET standard library is missing and rustup is not installed" >&2; exit 1; }
  rustup target add "$TARGET"
fi

# The cross linker, and pkg-config looking only at the arm64 .pc files
# (alsa-sys links libasound from /usr/lib/aarch64-linux-gnu; the paths in
# Debian's multi-arch .pc files are absolute, so the sysroot stays /).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR=/
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
unset PKG_CONFIG_PATH

target_dir="${CARGO_TARGET_DIR:-target}"
out="$target_dir/pi/$profile"
mkdir -p "$out"
started=$(date +%s)
echo "build-pi: cargo build --profile $profile --target $TARGET (target dir $target_dir)" >&2
built="$target_dir/$TARGET/$profile"
# gpio: the lights' PWM output through rppal, for the Pi only
pkgs=(-p earshot-device -p earshot-host --features earshot-device/gpio)
cargo build --locked --quiet --profile "$profile" --target "$TARGET" "${pkgs[@]}" --bins
if [ "$tests" -eq 1 ]; then
  # Only the device crate's unit tests (the integration tests need x86's
  # tools: mosquitto, tmux). The same packages and features as the build, and
  # device/Cargo.toml unifies the test dependencies' features, so this reuses
  # the compiled tract. The executable is found through cargo's JSON (its
  # name carries a hash).
  exe=$(cargo test --no-run --locked --quiet --profile "$profile" --target "$TARGET" "${pkgs[@]}" --lib \
    --message-format=json-render-diagnostics |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]
            and m["target"]["name"] == "earshot_device" and m["target"]["kind"] == ["lib"]):
        print(m["executable"])')
  [ -n "$exe" ] || { echo "build-pi: cargo did not report the unit-test executable" >&2; exit 1; }
  cp "$exe" "$out/earshot_device-tests"
fi
for bin in earshotd earshot; do
  aarch64-linux-gnu-strip -o "$out/$bin" "$built/$bin"
done
elapsed=$(($(date +%s) - started))

for bin in earshotd earshot; do
  f="$out/$bin"
  file -b "$f" | grep -q 'ARM aarch64' || { echo "build-pi: $f is not an aarch64 binary: $(file -b "$f")" >&2; exit 1; }
  # The newest glibc symbol version it needs must be one Bookworm has (2.36).
  newest=$(aarch64-linux-gnu-objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  if [ "$(printf '%s\n' "$newest" GLIBC_2.36 | sort -V | tail -1)" != GLIBC_2.36 ]; then
    echo "build-pi: $f needs $newest, newer than Bookworm's glibc 2.36" >&2; exit 1
  fi
  awk -v f="$f" -v s="$(stat -c %s "$f")" -v u="$(stat -c %s "$built/$bin")" -v g="$newest" \
    'BEGIN { printf "build-pi: %-40s %6.1f MB stripped (%.1f MB unstripped), needs %s\n", f, s / 1e6, u / 1e6, g }' >&2
done
echo "build-pi: built in ${elapsed} s" >&2

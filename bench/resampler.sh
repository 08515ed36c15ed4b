#!/usr/bin/env bash
# earshotd's resampler and FFT against the alternatives (bench/resampler.md): guest
# instructions under qemu-aarch64 as a Cortex-A72 (Pi 4), per second of 44.1 / 48 kHz
# input resampled to 22050 Hz and per 2048-point real FFT, and each resampler's
# passband and aliasing (on this machine). Instructions, not cycles.
# Usage: bash bench/resampler.sh      (needs what scripts/build-pi.sh installs, and qemu-user)
set -euo pipefail
cd "$(dirname "$0")/resampler-alternatives"
OUT=${CARGO_TARGET_DIR:-../../target}/bench-resampler
TOOL=${EARSHOT_INSNCOUNT:-../../../shared/tools/qemu-insncount}
mkdir -p "$OUT"
gcc -O2 -shared -fPIC -o "$OUT/libinsncount.so" "$TOOL/insncount.c"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
CARGO_TARGET_DIR="$OUT/target" cargo build --release --locked --quiet --target aarch64-unknown-linux-gnu
CARGO_TARGET_DIR="$OUT/target" cargo build --release --locked --quiet
ARM="$OUT/target/aarch64-unknown-linux-gnu/release/resampler-alternatives"
HOST="$OUT/target/release/resampler-alternatives"
count() {
  qemu-aarch64 -cpu cortex-a72 -L /usr/aarch64-linux-gnu -plugin "$OUT/libinsncount.so" -d plugin "$ARM" "$@" 2>&1 >/dev/null |
    awk '/^insns:/ { print $2; exit }'
}
per() {  # per(short_count, long_count, n) -> millions per unit
  awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.2f", (b - a) / n / 1e6 }'
}
echo "Cortex-A72 guest instructions, M per second of input (noise), resampled to 22050 Hz"
printf '%-44s %9s %9s  %s\n' resampler "44.1 kHz" "48 kHz" "quality at 48 kHz (this machine)"
for spec in "earshot" "fft" "sinc 48 blackmanharris 0.95" "sinc 64 blackmanharris 1.0"; do
  row=()
  for rate in 44100 48000; do
    # shellcheck disable=SC2086
    set -- $spec
    kind=$1; shift
    r=$(per "$(count rs "$kind" "$rate" 1 "$@")" "$(count rs "$kind" "$rate" 11 "$@")" 10)
    g=$(per "$(count gen "$rate" 1)" "$(count gen "$rate" 11)" 10)
    row+=("$(awk -v r="$r" -v g="$g" 'BEGIN { printf "%.2f", r - g }')")
  done
  # shellcheck disable=SC2086
  set -- $spec
  kind=$1; shift
  printf '%-44s %9s %9s  %s\n' "$spec" "${row[0]}" "${row[1]}" "$("$HOST" quality "$kind" 48000 "$@")"
done
echo
echo "Cortex-A72 guest instructions per 2048-point real FFT (thousands)"
for kind in micro real; do
  printf '%-8s %6.1f\n' "$kind" "$(awk -v a="$(count fft "$kind" 1)" -v b="$(count fft "$kind" 101)" 'BEGIN { print (b - a) / 100 / 1e3 }')"
done

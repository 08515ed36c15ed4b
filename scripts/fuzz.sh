#!/usr/bin/env bash
# Coverage-guided fuzzing of what earshot reads from outside: protocol lines
# (consoles, the daemon's request reader), config files, audio files.
# Installs a nightly toolchain and cargo-fuzz if missing (not part of CI: they
# take minutes to install and build; the same inputs are covered there by the
# property tests). Every crash found becomes a regression test.
#   bash scripts/fuzz.sh [SECONDS per target, default 60] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(protocol config audio_file)
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in "${targets[@]}"; do
  echo "fuzz: $t for $seconds s" >&2
  # -rss_limit_mb: a decoder that allocates per a hostile header is a finding too
  cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=1024 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|Done)' || true
  [ ! -d "fuzz/artifacts/$t" ] || [ -z "$(ls -A "fuzz/artifacts/$t")" ] || {
    echo "fuzz: $t found crashes in fuzz/artifacts/$t" >&2; exit 1; }
done

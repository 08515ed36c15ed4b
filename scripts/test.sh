#!/usr/bin/env bash
# The project's test command: installs what is missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step's time on stderr, so that a slow CI run says where it went.
step() {
  local t0=$SECONDS
  "$@"
  echo "test.sh: $* took $((SECONDS - t0)) s" >&2
}
step bash scripts/setup.sh
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets --quiet -- -D warnings
step cargo build --workspace --bins --quiet
step cargo test --workspace
step .venv/bin/python -m pytest -q models/train/tests

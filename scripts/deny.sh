#!/usr/bin/env bash
# Dependency policy (deny.toml): licences, sources and duplicate crates, with
# cargo-deny, offline; the RustSec advisories too where github.com answers
# (their database lives there). Installs cargo-deny if missing (about 400
# CPU-seconds the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $version\$"; then
  cargo install cargo-deny --locked --version "$version" --quiet
fi
cargo fetch --locked --quiet  # the licences are read from the crates' sources
cargo deny --offline check --hide-inclusion-graph licenses bans sources
if timeout 10 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
  cargo deny check advisories
else
  echo "deny: github.com cannot be reached: RustSec advisories not checked" >&2
fi

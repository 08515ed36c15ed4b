#!/bin/sh
# Captures each console view from a real terminal (tmux, fake daemon on loopback)
# and renders them to docs/img/console-{overview,explain,health}.png.
# Needs tmux, python3 with Pillow (pip install pillow) and fonts-dejavu-core.
set -eu
cd "$(dirname "$0")/../.."
captures=target/console-captures
mkdir -p "$captures" docs/img
EARSHOT_CAPTURE_DIR="$PWD/$captures" \
    cargo test -p earshot-host --test terminal -- --ignored render_docs_captures
for view in overview explain health; do
    python3 host/tests/render_ansi.py "$captures/console-$view.ansi" "docs/img/console-$view.png"
    echo "docs/img/console-$view.png"
done

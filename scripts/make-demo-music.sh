#!/usr/bin/env bash
# Makes the built-in demo music, device/assets/demo/*.mp3: four excerpts of
# orchestral music from The Battle for Wesnoth (Debian package
# wesnoth-1.16-music, GPL-2.0-or-later; credits in
# device/assets/demo/ATTRIBUTION.md), mono 22050 Hz, faded at the cuts.
#
# They are encoded as the model's training clips were (MP3, 64 kbit/s CBR,
# mono, 22050 Hz, by LAME). edge-v4 needed that: at this rate LAME drops the
# quiet content above about 10 kHz, which edge-v4 never saw, and it read the
# same excerpts with their top octave intact as much happier and more
# energetic. Front end version 2 (bands up to 8 kHz) reads both alike
# (ATTRIBUTION.md).
#
# The excerpts were chosen with the model itself: stretches of the package
# that it reads clearly as calm/tender, happy, tense/dark and sad (numbers in
# ATTRIBUTION.md; `earshotd analyze device/assets/demo/N-x.mp3` shows them
# again). Their order, titles and start times are also in
# device/src/capture/demo.rs, whose tests check the readings.
#
# Usage: bash scripts/make-demo-music.sh   (Debian; installs sox and lame,
# downloads the package with apt-get download; nothing is installed from it)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=wesnoth-1.16-music
VERSION=1:1.16.9-1 # Debian 12 (bookworm)
OUT=device/assets/demo
FADE_IN_S=0.3
FADE_OUT_S=1.5

# file        source track              start_s length_s  title                composer
EXCERPTS="
1-calm.mp3    knolls.ogg                39      22        The Knolls of Doldesh  Timothy Pinkham
2-happy.mp3   traveling_minstrels.ogg   127     22        Traveling Minstrels  Mattias Westlund
3-tense.mp3   vengeful.ogg              83      22        Vengeful Pursuit     Jeremy Nicoll
4-sad.mp3     weight_of_revenge.ogg     196     22        Weight of Revenge    Doug Kaufman
"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
need=()
command -v sox >/dev/null || need+=(sox libsox-fmt-all)
command -v lame >/dev/null || need+=(lame)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "$PACKAGE=$VERSION")
dpkg-deb -x "$work"/"${PACKAGE}"_*.deb "$work/root"
music="$work/root/usr/share/games/wesnoth/1.16/data/core/music"

mkdir -p "$OUT"
echo "$EXCERPTS" | while read -r file track start length rest; do
  [ -n "$file" ] || continue
  # title and composer are separated by two or more spaces
  title=$(sed -E 's/ {2,}/\t/g' <<<"$rest" | cut -f1)
  composer=$(sed -E 's/ {2,}/\t/g' <<<"$rest" | cut -f2)
  # -R: repeatable dither, so that the files come out byte-identical;
  # -G: lower the gain where resampling would clip
  sox -R -G "$music/$track" -b 16 "$work/$file.wav" \
    trim "$start" "$length" channels 1 rate -v 22050 \
    fade t "$FADE_IN_S" "$length" "$FADE_OUT_S"
  lame --quiet -b 64 -m m --id3v2-only \
    --tt "$title (excerpt, ${start}-$((start + length)) s)" --ta "$composer" \
    --tc "GPL-2.0-or-later; Debian $PACKAGE $VERSION, $track" \
    "$work/$file.wav" "$OUT/$file"
  printf '%-12s %6d bytes  %s s of %s (%s)\n' "$file" "$(stat -c %s "$OUT/$file")" "$length" "$title" "$composer"
done
du -cb "$OUT"/*.mp3 | tail -1

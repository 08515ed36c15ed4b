#!/usr/bin/env bash
# Builds the earshot Debian package with plain dpkg-deb (no debhelper, no
# cargo-deb) from binaries that are already built:
#
#   bash scripts/build-pi.sh && bash scripts/package-deb.sh            arm64, for the Pi
#   bash scripts/package-deb.sh --arch amd64 --bindir target/release   this machine
#
# Options: --arch arm64|amd64 (default arm64), --bindir DIR holding earshotd and
# earshot (default: build-pi.sh's release output for arm64, target/release for
# amd64), --out DIR (default target/deb). Prints the .deb's path on stdout.
#
# The package: /usr/bin/earshotd and /usr/bin/earshot (stripped),
# /etc/earshot/earshot.toml (a conffile: deploy/earshot.toml), the systemd unit
# /lib/systemd/system/earshotd.service (alias earshot.service), docs under
# /usr/share/doc/earshot. postinst creates the system user `earshot` (in group
# audio) and /var/lib/earshot, enables and starts the service where systemd
# runs; purge removes the user, its group, /var/lib/earshot and /etc/earshot.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=arm64
bindir=""
out=target/deb
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs arm64 or amd64}"; shift 2 ;;
    --bindir) bindir="${2:?--bindir needs a directory}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    *) echo "package-deb: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
case "$arch" in
  arm64) strip=aarch64-linux-gnu-strip; objdump=aarch64-linux-gnu-objdump; elf='ARM aarch64'
         bindir="${bindir:-${CARGO_TARGET_DIR:-target}/pi/release}" ;;
  amd64) strip=strip; objdump=objdump; elf='x86-64'
         bindir="${bindir:-${CARGO_TARGET_DIR:-target}/release}" ;;
  *) echo "package-deb: --arch must be arm64 or amd64, not $arch" >&2; exit 2 ;;
esac
for tool in dpkg-deb "$strip" "$objdump" file gzip; do
  command -v "$tool" >/dev/null || {
    echo "package-deb: $tool is missing (arm64: bash scripts/build-pi.sh installs it; amd64: apt-get install binutils file)" >&2
    exit 1
  }
done
for bin in earshotd earshot; do
  [ -x "$bindir/$bin" ] || {
    echo "package-deb: $bindir/$bin not found; build it first (arm64: bash scripts/build-pi.sh)" >&2; exit 1; }
  file -b "$bindir/$bin" | grep -q "$elf" || {
    echo "package-deb: $bindir/$bin is not an $arch binary: $(file -b "$bindir/$bin")" >&2; exit 1; }
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "package-deb: no [workspace.package] version in Cargo.toml" >&2; exit 1; }
debversion="$version-1"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/earshot"
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/etc/earshot" \
  "$root/lib/systemd/system" "$root/usr/share/doc/earshot"
for bin in earshotd earshot; do
  "$strip" -o "$root/usr/bin/$bin" "$bindir/$bin"
  chmod 0755 "$root/usr/bin/$bin"
done
install -m 0644 deploy/earshot.toml "$root/etc/earshot/earshot.toml"
install -m 0644 deploy/earshotd.service "$root/lib/systemd/system/earshotd.service"
doc="$root/usr/share/doc/earshot"
install -m 0644 docs/install.md docs/protocol.md "$doc/"
install -m 0644 README.md "$doc/README.md"
install -m 0644 device/assets/demo/ATTRIBUTION.md "$doc/demo-music-ATTRIBUTION.md"
cat >"$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: earshot
Comment: earshotd embeds its model and its demo music.

Files: *
Copyright: the earshot authors
License: MIT or Apache-2.0
 On Debian systems the Apache licence is in /usr/share/common-licenses/Apache-2.0.
 .
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
 THE SOFTWARE.

Files: usr/bin/earshotd (the embedded demo music)
Copyright: 2006 Timothy Pinkham
 2008 Mattias Westlund
 2007 Jeremy Nicoll
 2010 Doug Kaufman
License: GPL-2+
 Excerpts of The Battle for Wesnoth's soundtrack (Debian: wesnoth-1.16-music
 1:1.16.9-1); titles and changes in demo-music-ATTRIBUTION.md. On Debian
 systems the GPL version 2 is in /usr/share/common-licenses/GPL-2.

Files: usr/bin/earshotd (the embedded model)
Copyright: the earshot authors
License: MIT or Apache-2.0
 Trained on the Soundtracks data set (Eerola & Vuoskoski 2011), which is for
 non-commercial research use; see the model card (README.md).
EOF
gzip -9n >"$doc/changelog.Debian.gz" <<EOF
earshot ($debversion) bookworm; urgency=medium

  * Package built by scripts/package-deb.sh from $(git rev-parse --short HEAD 2>/dev/null || echo "a source tree").

 -- earshot maintainers <earshot@example.invalid>  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
EOF
chmod 0644 "$doc"/*

# Runtime dependencies from what the binaries link, and the newest glibc
# symbol version they use.
needed=$("$objdump" -p "$root"/usr/bin/* | awk '/NEEDED/ {print $2}' | sort -u)
glibc=$("$objdump" -T "$root"/usr/bin/* | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
depends="libc6 (>= $glibc)"
for lib in $needed; do
  case "$lib" in
    libc.so.6|libm.so.6|ld-linux*|libpthread.so.0|libdl.so.2|librt.so.1) ;;
    libasound.so.2) depends="$depends, libasound2 (>= 1.0.16)" ;;
    libgcc_s.so.1) depends="$depends, libgcc-s1 (>= 4.2)" ;;
    *) echo "package-deb: the binaries link $lib: add its package to Depends here" >&2; exit 1 ;;
  esac
done
depends="$depends, adduser"

cat >"$root/DEBIAN/control" <<EOF
Package: earshot
Version: $debversion
Architecture: $arch
Maintainer: earshot maintainers <earshot@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: sound
Priority: optional
Homepage: https://example.invalid/earshot
Description: explainable music-emotion sensor (daemon and console)
 earshotd listens to a room through a microphone or line input, reads the
 music's seven mid-level perceptual features and eight emotions every second
 with a small neural network, explains each emotion by the features, and
 serves the readings to consoles over TCP or a unix socket.
 .
 earshot is the terminal console for it (works over SSH in 80x24).
EOF
echo /etc/earshot/earshot.toml >"$root/DEBIAN/conffiles"

# Maintainer scripts: what dh_installsystemd and adduser would generate,
# written out because this package is built without debhelper.
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd earshot >/dev/null; then
        adduser --quiet --system --group --home /var/lib/earshot --no-create-home \
            --gecos "earshot daemon" earshot
    fi
    # The microphone: ALSA's device nodes belong to group audio.
    adduser --quiet earshot audio
    install -d -o earshot -g earshot -m 0750 /var/lib/earshot
fi
if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
    if command -v deb-systemd-helper >/dev/null; then
        deb-systemd-helper unmask earshotd.service >/dev/null || true
        if deb-systemd-helper --quiet was-enabled earshotd.service; then
            deb-systemd-helper enable earshotd.service >/dev/null || true
        else
            deb-systemd-helper update-state earshotd.service >/dev/null || true
        fi
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then action=restart; else action=start; fi
        # A missing microphone must not fail the installation: the unit
        # keeps retrying and `journalctl -u earshotd` says why.
        deb-systemd-invoke "$action" earshotd.service >/dev/null || true
    fi
fi
exit 0
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    deb-systemd-invoke stop earshotd.service >/dev/null || true
fi
exit 0
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null; then
    deb-systemd-helper mask earshotd.service >/dev/null || true
fi
if [ "$1" = purge ]; then
    if command -v deb-systemd-helper >/dev/null; then
        deb-systemd-helper purge earshotd.service >/dev/null || true
        deb-systemd-helper unmask earshotd.service >/dev/null || true
    fi
    rm -rf /var/lib/earshot /run/earshot
    # dpkg has removed the conffile; local files (e.g. a token) go too.
    rm -rf /etc/earshot
    # adduser may be gone by now (purge after removing it): fall back to passwd's tools.
    if getent passwd earshot >/dev/null; then
        if command -v deluser >/dev/null; then
            deluser --quiet --system earshot >/dev/null 2>&1 || true
        else
            userdel earshot >/dev/null || true
        fi
    fi
    if getent group earshot >/dev/null; then
        if command -v delgroup >/dev/null; then
            delgroup --quiet --system earshot >/dev/null || true
        else
            groupdel earshot >/dev/null || true
        fi
    fi
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/earshot_${debversion}_${arch}.deb"
# --root-owner-group: files owned by root whoever builds it (no fakeroot
# needed); SOURCE_DATE_EPOCH: file times are the commit's, not the build's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)} \
  dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "package-deb: $deb ($(du -h "$deb" | cut -f1); Depends: $depends)" >&2
echo "$deb"

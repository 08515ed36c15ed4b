#!/usr/bin/env bash
# The Raspberry Pi checks, on this x86 machine: cross-builds earshotd and
# earshot for aarch64 (scripts/build-pi.sh) and runs them under qemu-user as a
# Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5, dot-product int8 kernels):
#   1. the device crate's front-end and model unit tests (golden vectors:
#      models/testdata), built for aarch64;
#   2. `earshotd analyze --json` on real music (the demo clips, and one
#      Soundtracks clip when ../shared/data is there), f32 and int8, against
#      the same run of the x86 earshotd: every window's 15 values within
#      TOL_F32 / TOL_INT8;
#   3. `earshotd devices` and `run --device` on a machine without a sound card
#      fail with a plain message;
#   4. the arm64 and amd64 .deb (scripts/package-deb.sh): contents and control
#      fields; the unit's `systemd-analyze security` exposure <= 2.0; with
#      CI_DEB_INSTALL=1 (CI only: root on a disposable machine) the amd64
#      package is really installed, run as its user, and purged.
# Usage: bash scripts/test-pi.sh [--no-build]   (CI runs it after scripts/test.sh)
# Env: EARSHOT_PI_PROFILE (default pi-ci; release for the shipped build),
#      EARSHOTD_NATIVE / EARSHOT_NATIVE (x86 binaries to compare with; default:
#      scripts/test.sh's debug build in target/), CARGO_TARGET_DIR (where
#      build-pi.sh builds; CI keeps it outside the clone, see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
profile=${EARSHOT_PI_PROFILE:-pi-ci}
# A reading's values are 0..1. f32 kernels differ between x86 (AVX/FMA) and
# aarch64 (NEON) only in summation order; int8 requantisation may round one
# step differently. Measured: both identical to 1e-6 (see docs/install.md).
TOL_F32=1e-4
TOL_INT8=1e-3

if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }
need=()
for pkg in qemu-user binutils file; do installed "$pkg" || need+=("$pkg"); done
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  echo "test-pi: installing ${need[*]}" >&2
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --no-build: check what build-pi.sh left in $CARGO_TARGET_DIR/pi/<profile> (iterating on the checks).
[ "${1:-}" = --no-build ] || bash scripts/build-pi.sh --profile "$profile" --tests
pi="${CARGO_TARGET_DIR:-target}/pi/$profile"
built=$(date +%s)

if [ -z "${EARSHOTD_NATIVE:-}" ] || [ -z "${EARSHOT_NATIVE:-}" ]; then
  # The same command as scripts/test.sh, in its target directory: nothing to
  # do when it ran before (CARGO_TARGET_DIR may point at the cross build's).
  env -u CARGO_TARGET_DIR cargo build --workspace --bins --quiet
  EARSHOTD_NATIVE=target/debug/earshotd
  EARSHOT_NATIVE=target/debug/earshot
fi

# No -L: the arm64 glibc from libasound2-dev:arm64's multi-arch libc6 is the
# only one the guest sees. `-L /usr/aarch64-linux-gnu` would mix the cross
# toolchain's ld.so with that libc.so.6, and threaded programs hang.
qemu() { local cpu=$1; shift; qemu-aarch64 -cpu "$cpu" "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "test-pi: FAIL: $*" >&2; exit 1; }

# qemu-user runs one guest thread per host thread: run two jobs at a time (CI has 2 cores).
jobs_run() {  # name command... ; output in $work/NAME.out, exit status and seconds in $work/NAME.rc
  local name=$1; shift
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
  ( t0=$(date +%s.%N); rc=0; "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
    echo "$rc $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" >"$work/$name.rc" ) &
}
job_ok() { local rc; read -r rc _ <"$work/$1.rc"; [ "$rc" -eq 0 ] || { tail -20 "$work/$1.err" >&2; return 1; }; }
job_secs() { cut -d' ' -f2 "$work/$1.rc"; }

echo "== 1. front end, model, notify and capture unit tests (golden vectors) on aarch64" >&2
# All of them as a Pi 4; as a Pi 5 only the int8 model's (the dot-product
# kernels are the one code path that differs between the two CPUs).
jobs_run unit-cortex-a72 qemu cortex-a72 "$pi/earshot_device-tests" --test-threads 1 -q \
  frontend:: model:: explain:: notify:: capture::live::
jobs_run unit-cortex-a76 qemu cortex-a76 "$pi/earshot_device-tests" --test-threads 1 -q model::tests::int8
wait
for cpu_min in cortex-a72:20 cortex-a76:2; do
  cpu=${cpu_min%:*}
  job_ok "unit-$cpu" || { cat "$work/unit-$cpu.out" >&2; fail "unit tests on $cpu"; }
  summary=$(grep '^test result' "$work/unit-$cpu.out")
  passed=$(echo "$summary" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
  [ "${passed:-0}" -ge "${cpu_min#*:}" ] || fail "only ${passed:-0} unit tests ran on $cpu"
  echo "   $cpu: $summary ($(job_secs "unit-$cpu") s under qemu)" >&2
done
# The golden-vector tests must be among them, not filtered away.
qemu cortex-a72 "$pi/earshot_device-tests" --list frontend:: model:: >"$work/list.txt" 2>/dev/null
for t in frontend::tests::matches_reference_on_golden_vectors model::tests::f32_matches_golden_output \
         model::tests::int8_matches_golden_output_loosely; do
  grep -qx "$t: test" "$work/list.txt" || fail "the golden-vector test $t is not in the aarch64 build"
done

echo "== 2. earshotd analyze: aarch64 under qemu against x86" >&2
clips=(device/assets/demo/2-happy.mp3 device/assets/demo/3-tense.mp3)
shared=../shared/data/soundtracks/audio/001.mp3
[ -f "$shared" ] && clips+=("$shared")
# f32 runs the same kernels on both CPUs (checked: identical); int8 takes the
# dot-product kernels on the A76 only, so int8 runs on both.
runs=("f32 cortex-a72" "int8 cortex-a72" "int8 cortex-a76")
for clip in "${clips[@]}"; do
  name=$(basename "$clip" .mp3)
  for precision in f32 int8; do
    "$EARSHOTD_NATIVE" analyze "$clip" --json --precision "$precision" >"$work/$name-$precision-x86.json" 2>/dev/null ||
      fail "native earshotd analyze $clip ($precision)"
  done
  for run in "${runs[@]}"; do
    read -r precision cpu <<<"$run"
    jobs_run "$name-$precision-$cpu" qemu "$cpu" "$pi/earshotd" analyze "$clip" --json --precision "$precision"
  done
done
wait
for clip in "${clips[@]}"; do
  name=$(basename "$clip" .mp3)
  for run in "${runs[@]}"; do
    read -r precision cpu <<<"$run"
    job="$name-$precision-$cpu"
    job_ok "$job" || fail "aarch64 earshotd analyze $clip ($precision, $cpu)"
    tol=$TOL_F32; [ "$precision" = int8 ] && tol=$TOL_INT8
    python3 - "$work/$name-$precision-x86.json" "$work/$job.out" "$tol" "$name $precision $cpu" \
      "$(job_secs "$job")" <<'PY' || fail "$name $precision $cpu differs from x86"
import json, sys
x86, arm = (json.load(open(p)) for p in sys.argv[1:3])
tol, label, secs = float(sys.argv[3]), sys.argv[4], sys.argv[5]
assert x86["precision"] == arm["precision"], (x86["precision"], arm["precision"])
assert len(x86["windows"]) == len(arm["windows"]) > 0, "window counts differ"
worst = 0.0
for a, b in zip(x86["windows"], arm["windows"]):
    assert a["state"] == b["state"], (a["start_s"], a["state"], b["state"])
    for group in ("mid_level", "emotions"):
        assert a[group].keys() == b[group].keys()
        for k in a[group]:
            worst = max(worst, abs(a[group][k] - b[group][k]))
summary = max(abs(x86["summary"][g][k] - arm["summary"][g][k])
              for g in ("mid_level", "emotions") for k in x86["summary"][g])
s = x86["summary"]["emotions"]
top = max(s, key=s.get)
print(f"   {label:<28} {len(arm['windows']):3d} windows, max |aarch64 - x86| {worst:.1e} "
      f"(summary {summary:.1e}, tolerance {tol:g}); reads as {top} {s[top]:.2f}; "
      f"{secs} s under qemu", file=sys.stderr)
sys.exit(0 if worst <= tol and summary <= tol else 1)
PY
  done
done

echo "== 2b. precision = auto: int8 only where the model's metadata says it is faster" >&2
# A copy of the shipped model that declares int8 faster on dot-product CPUs:
# the A76 (Pi 5) has the dot product, the A72 (Pi 4) has not.
cp -r "models/$(cat models/SHIPPED)" "$work/model-auto"
python3 - "$work/model-auto/metadata.json" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
meta["int8_faster_on"] = ["aarch64+dotprod"]
json.dump(meta, open(sys.argv[1], "w"))
PY
for cpu in cortex-a72 cortex-a76; do
  qemu "$cpu" "$pi/earshotd" analyze device/assets/demo/2-happy.mp3 --json --model "$work/model-auto" \
    >"$work/auto-$cpu.json" 2>/dev/null || fail "aarch64 earshotd analyze, precision auto ($cpu)"
done
python3 - "$work/auto-cortex-a72.json" "$work/auto-cortex-a76.json" <<'PY' || fail "precision auto chose wrongly"
import json, sys
a72, a76 = (json.load(open(p)) for p in sys.argv[1:3])
for cpu, r in (("cortex-a72", a72), ("cortex-a76", a76)):
    print(f"   {cpu}: {r['precision']} ({r['precision_reason']})", file=sys.stderr)
assert a72["precision"] == "f32" and a76["precision"] == "int8", (a72["precision"], a76["precision"])
PY

echo "== 3. no sound card: plain messages" >&2
# qemu-user runs the real aarch64 ALSA library; this machine has no /dev/snd.
set +e
qemu cortex-a72 "$pi/earshotd" devices >"$work/devices.out" 2>"$work/devices.err"
rc_devices=$?
qemu cortex-a72 "$pi/earshotd" run --device default --no-server --stdout >"$work/run.out" 2>"$work/run.err"
rc_run=$?
qemu cortex-a72 "$pi/earshotd" run --device "USB Audio" --no-server --stdout >"$work/usb.out" 2>"$work/usb.err"
rc_usb=$?
set -e
echo "   earshotd devices (exit $rc_devices): $(cat "$work/devices.out" "$work/devices.err" | tail -3)" >&2
echo "   earshotd run --device default (exit $rc_run): $(tail -1 "$work/run.err")" >&2
echo "   earshotd run --device \"USB Audio\" (exit $rc_usb): $(tail -1 "$work/usb.err")" >&2
[ "$rc_devices" -eq 0 ] || fail "earshotd devices failed without a sound card"
# Only ALSA's null device (zeros, what the integration tests capture from), or nothing.
! grep -v '\[alsa:null\]' "$work/devices.out" | grep -qv 'no audio input devices found' ||
  fail "earshotd devices listed a device on a machine without a sound card"
for what in run usb; do
  rc_var="rc_$what"
  [ "${!rc_var}" -eq 1 ] || fail "run --device ($what) exited ${!rc_var}, not 1"
  tail -1 "$work/$what.err" | grep -q '^earshotd: error: ' || fail "run --device ($what) did not end with one error line"
  ! grep -qiE 'panick|RUST_BACKTRACE|stack backtrace' "$work/$what.err" || fail "run --device ($what) panicked"
  [ ! -s "$work/$what.out" ] || fail "run --device ($what) wrote readings without a device"
done
if [ ! -e /dev/snd ]; then
  grep -q 'no sound card' "$work/run.err" || fail "the message for a machine without a sound card does not say so"
fi
grep -q 'earshotd devices' "$work/run.err" || fail "the message for a missing default device does not point at earshotd devices"
grep -q 'no input device named "USB Audio"' "$work/usb.err" || fail "the message for an unknown device does not name it"
! grep -q 'Discard all samples' "$work/usb.err" || fail "the message lists ALSA's null device by its confusing description"

echo "== 4. packages and the service unit" >&2
check_deb() {
  local deb=$1 arch=$2
  dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' >"$work/contents.txt"
  for f in ./usr/bin/earshotd ./usr/bin/earshot; do
    grep -q "^-rwxr-xr-x root/root $f\$" "$work/contents.txt" || fail "$deb: $f missing or not 0755 root"
  done
  for f in ./etc/earshot/earshot.toml ./lib/systemd/system/earshotd.service ./usr/share/doc/earshot/copyright \
           ./usr/share/doc/earshot/install.md ./usr/share/doc/earshot/changelog.Debian.gz; do
    grep -q "^-rw-r--r-- root/root $f\$" "$work/contents.txt" || fail "$deb: $f missing or not 0644 root"
  done
  [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || fail "$deb: architecture is not $arch"
  dpkg-deb -f "$deb" Depends | grep -q 'libasound2' || fail "$deb: does not depend on libasound2"
  dpkg-deb -I "$deb" conffiles | grep -qx /etc/earshot/earshot.toml || fail "$deb: the config is not a conffile"
  for s in postinst prerm postrm; do dpkg-deb -I "$deb" "$s" | sh -n || fail "$deb: $s is not valid sh"; done
  echo "   $deb: $(du -h "$deb" | cut -f1), $(wc -l <"$work/contents.txt") entries, Depends: $(dpkg-deb -f "$deb" Depends)" >&2
}
arm_deb=$(bash scripts/package-deb.sh --arch arm64 --bindir "$pi" --out "$work/deb")
check_deb "$arm_deb" arm64
dpkg-deb -x "$arm_deb" "$work/arm-root"
file -b "$work/arm-root/usr/bin/earshotd" | grep -q 'ARM aarch64.*stripped' || fail "arm64 package: earshotd not a stripped aarch64 binary"
qemu cortex-a72 "$work/arm-root/usr/bin/earshot" --version >/dev/null || fail "the packaged earshot does not run"
mkdir -p "$work/amd64-bin"
cp "$EARSHOTD_NATIVE" "$EARSHOT_NATIVE" "$work/amd64-bin/"
amd_deb=$(bash scripts/package-deb.sh --arch amd64 --bindir "$work/amd64-bin" --out "$work/deb")
check_deb "$amd_deb" amd64

exposure=$(systemd-analyze security --offline=yes deploy/earshotd.service 2>/dev/null |
  sed -n 's/.*Overall exposure level for earshotd.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security gave no exposure level"
echo "   systemd-analyze security deploy/earshotd.service: exposure $exposure (goal <= 2.0)" >&2
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "the unit's exposure $exposure is above 2.0"

if [ "${CI_DEB_INSTALL:-}" = 1 ]; then
  [ "$(id -u)" -eq 0 ] || fail "CI_DEB_INSTALL=1 needs root (a disposable machine)"
  ! getent passwd earshot >/dev/null || fail "a user earshot exists already; this check needs a clean machine"
  # No systemd as PID 1 here: postinst enables the unit (symlinks) but starts nothing.
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$amd_deb" >/dev/null ||
    fail "installing $amd_deb"
  id -nG earshot | tr ' ' '\n' | grep -qx audio || fail "user earshot is not in group audio"
  [ "$(stat -c '%U:%G %a' /var/lib/earshot)" = "earshot:earshot 750" ] || fail "/var/lib/earshot: $(stat -c '%U:%G %a' /var/lib/earshot)"
  [ -L /etc/systemd/system/multi-user.target.wants/earshotd.service ] || fail "postinst did not enable earshotd.service"
  [ -L /etc/systemd/system/earshot.service ] || fail "the alias earshot.service is missing"
  systemd-analyze verify /lib/systemd/system/earshotd.service || fail "systemd-analyze verify"
  cp device/assets/demo/1-calm.mp3 "$work/clip.mp3"
  chmod 0755 "$work"; chmod 0644 "$work/clip.mp3"
  # As the service's user, with the shipped config: the installed daemon reads music.
  runuser -u earshot -- /usr/bin/earshotd analyze "$work/clip.mp3" --config /etc/earshot/earshot.toml >"$work/installed.txt" ||
    fail "the installed earshotd does not run as user earshot"
  grep -q 'emotions' "$work/installed.txt" || fail "the installed earshotd printed no emotions"
  dpkg --purge earshot >/dev/null || fail "dpkg --purge earshot"
  ! getent passwd earshot >/dev/null || fail "purge left the user earshot"
  ! getent group earshot >/dev/null || fail "purge left the group earshot"
  for p in /var/lib/earshot /etc/earshot /usr/bin/earshotd /etc/systemd/system/earshot.service \
           /etc/systemd/system/multi-user.target.wants/earshotd.service; do
    [ ! -e "$p" ] && [ ! -L "$p" ] || fail "purge left $p"
  done
  echo "   installed $amd_deb as root (user earshot in audio, unit enabled, daemon ran as earshot), purged cleanly" >&2
else
  echo "   (the real dpkg -i / purge check runs with CI_DEB_INSTALL=1, in CI)" >&2
fi
echo "test-pi: all checks passed; build $((built - started)) s, checks $(($(date +%s) - built)) s" >&2

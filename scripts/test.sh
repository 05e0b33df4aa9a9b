#!/usr/bin/env bash
# Sets everything up, starts a private PulseAudio server for the `audio` tests, then runs
# pytest with the arguments given. With no arguments (what CI runs): the whole suite, then
# the C++ core's tests again under AddressSanitizer + UBSan and ThreadSanitizer
# (scripts/test_sanitized.sh, about 1.5 min).
#
# The server is the test's own, whatever else runs on the machine: it lives in a fresh
# XDG_RUNTIME_DIR (its socket, pid file and log), so a desktop's or another run's server is
# neither used nor disturbed, and it is stopped at exit. Its only device is a null sink,
# pyser_test, made the default sink and its monitor (what is played into the sink) the
# default source: `paplay` into it is what PortAudio "records". PULSE_SERVER and
# XDG_RUNTIME_DIR are exported for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

start_pulse() {
  local dir=$1 socket=$1/pulse/native
  # -n: no default.pa (no hardware probing, no D-Bus); the modules are named instead.
  # Anonymous auth: the socket sits in a 0700 folder of this user, and no cookie file in
  # $HOME is needed (CI's HOME may be read-only).
  pulseaudio --daemonize=yes --system=false -n --exit-idle-time=-1 \
    --log-target="file:$dir/pulseaudio.log" \
    --load="module-native-protocol-unix socket=$socket auth-anonymous=1 auth-cookie-enabled=0" \
    --load="module-null-sink sink_name=pyser_test rate=48000 channels=2" \
    --load="module-always-sink" >"$dir/start.log" 2>&1 || return 1
  local i
  for i in $(seq 50); do  # --daemonize returns once it runs; wait until it answers
    pactl info >/dev/null 2>&1 && break
    sleep 0.1
  done
  pactl set-default-sink pyser_test && pactl set-default-source pyser_test.monitor
}

stop_pulse() {
  local dir=$1 pid i
  if [ -f "$dir/pulse/pid" ]; then
    pid=$(cat "$dir/pulse/pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$dir"
}

echo "==> starting a private PulseAudio server (null sink pyser_test) for the audio tests"
PULSE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pyser-pulse.XXXXXX")
trap 'stop_pulse "$PULSE_DIR"' EXIT
export XDG_RUNTIME_DIR="$PULSE_DIR"
export PULSE_SERVER="unix:$PULSE_DIR/pulse/native"
unset PULSE_SINK PULSE_SOURCE  # they would override the defaults set here
if ! (command -v pulseaudio >/dev/null && start_pulse "$PULSE_DIR") >"$PULSE_DIR/setup.log" 2>&1
then
  # Not fatal here: the other tests still run, and the `audio` tests fail saying why.
  echo "scripts/test.sh: warning: could not start PulseAudio; the audio tests will fail:" >&2
  cat "$PULSE_DIR"/setup.log "$PULSE_DIR"/start.log "$PULSE_DIR"/pulseaudio.log 2>/dev/null \
    | tail -n 20 >&2 || true
fi

status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$#" -eq 0 ]; then
  echo "==> the C++ core's tests under AddressSanitizer + UBSan and ThreadSanitizer"
  bash scripts/test_sanitized.sh || status=$?
fi
exit "$status"

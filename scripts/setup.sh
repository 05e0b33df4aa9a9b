#!/usr/bin/env bash
# Sets up everything pyser needs on a fresh Debian/Ubuntu machine, idempotently:
# system packages, a virtual environment in .venv, torch (CPU build), and
# pyser itself (C++ extension built from source) with its test, training,
# listen (microphone) and baseline (openSMILE + SVM) extras. Prints one line per step.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the C++ toolchain and Python headers (the extension); PortAudio's
# headers (PyAudio builds from source on Linux); the PulseAudio server and client tools
# (scripts/test.sh starts a server with a null sink for the microphone tests) and ALSA's
# PulseAudio plugin (Debian's PortAudio reaches PulseAudio through ALSA); espeak-ng (tests
# synthesise speech); libsndfile (soundfile's wheels bundle a copy; source installs use it).
SYSTEM_PACKAGES=(g++ python3-venv python3-dev portaudio19-dev pulseaudio pulseaudio-utils
                 libasound2-plugins espeak-ng libsndfile1)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  log=$(mktemp)
  # apt's chatter (debconf notes) goes to a log that is printed only when a step fails.
  if ! { $SUDO apt-get update -qq && \
         $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "setup.sh: error: could not install ${missing[*]}" >&2
    exit 1
  fi
  rm -f "$log"
else
  echo "==> system packages present"
fi

if [ -x .venv/bin/python ]; then
  echo "==> virtual environment .venv present"
else
  echo "==> creating virtual environment .venv"
  python3 -m venv .venv
fi
# -qq: errors only; this machine's pip config lists a missing index folder that
# would print one warning per package.
PIP=".venv/bin/python -m pip"
echo "==> installing pip, torch (CPU) and build tools"
$PIP install -qq --upgrade pip
# torch first and pinned: 2.13.0 is a CPU build that pip finds locally; an
# unpinned torch would pull a multi-GB CUDA build.
$PIP install -qq "torch==2.13.0"
$PIP install -qq "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
echo "==> installing pyser (editable) with its test, train, listen and baseline extras"
$PIP install -qq --no-build-isolation -e ".[test,train,listen,baseline]"

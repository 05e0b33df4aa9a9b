#!/usr/bin/env bash
# Sets up everything pyser needs on a fresh Debian/Ubuntu machine, idempotently:
# system packages, a virtual environment in .venv, torch (CPU build), and
# pyser itself (C++ extension built from source) with its test and training extras.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v g++ >/dev/null || ! command -v python3 >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends g++ python3-venv python3-dev >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# -qq: errors only; this machine's pip config lists a missing index folder that
# would print one warning per package.
PIP=".venv/bin/python -m pip"
$PIP install -qq --upgrade pip
# torch first and pinned: 2.13.0 is a CPU build that pip finds locally; an
# unpinned torch would pull a multi-GB CUDA build.
$PIP install -qq "torch==2.13.0"
$PIP install -qq "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
$PIP install -qq --no-build-isolation -e ".[test,train]"

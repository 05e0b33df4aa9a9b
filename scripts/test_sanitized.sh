#!/usr/bin/env bash
# Builds the C++ core and the pyser._core binding with sanitizers into their
# own folders and runs the feature tests against them; exits non-zero on any
# test failure or sanitizer report. The normal build (.venv, build/) is left
# as it is.
#
#   bash scripts/test_sanitized.sh           # ASan+UBSan run, then the TSan run
#   bash scripts/test_sanitized.sh asan      # only AddressSanitizer + UBSan
#   bash scripts/test_sanitized.sh tsan      # only ThreadSanitizer (threading tests)
#
# Needs .venv from scripts/setup.sh (pybind11, cmake, ninja, the test
# dependencies) and g++ with its sanitizer runtimes (libasan, libubsan,
# libtsan; Debian/Ubuntu ship them with g++). Builds with at most
# $PYSER_JOBS (default 2) jobs.
#
# How it loads a sanitized extension into the (unsanitized) interpreter: the
# runtime is LD_PRELOADed, which it must be to come first. The tests run in a
# throw-away virtual environment whose only site path file lists a staging
# folder (pyser's Python files plus the sanitized _core) before .venv's
# packages, so that pyser, and the child processes some tests start through
# sys.executable, import the sanitized module and not the editable install.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV_PY=$ROOT/.venv/bin/python
JOBS=${PYSER_JOBS:-2}
WHICH=${1:-all}
case $WHICH in
  all | asan | tsan) ;;
  *) echo "usage: scripts/test_sanitized.sh [all|asan|tsan]" >&2; exit 2 ;;
esac
[ -x "$VENV_PY" ] || { echo "test_sanitized.sh: run scripts/setup.sh first" >&2; exit 2; }
CXX=${CXX:-g++}

ASAN_TESTS=(tests/test_features.py tests/test_streaming.py tests/test_bad_input.py
            tests/test_threading.py tests/test_input_contract.py tests/test_loud_input.py
            tests/test_core_options.py tests/test_binding_properties.py)
TSAN_TESTS=(tests/test_threading.py tests/test_binding_properties.py::test_threads_sharing_a_stream
            tests/test_streaming.py::test_threads_with_own_extractors_match_serial
            tests/test_streaming.py::test_batch_equals_per_signal)

step() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }

# build NAME SANITIZERS: configures and builds build/sanitize-NAME, stages
# pyser with the sanitized _core and a virtual environment to run it in.
build() {
  local name=$1 sanitize=$2
  local dir=$ROOT/build/sanitize-$name
  step "build $name (-fsanitize=$sanitize) in ${dir#$ROOT/}"
  "$ROOT/.venv/bin/cmake" -S "$ROOT" -B "$dir" -G Ninja \
    -DCMAKE_MAKE_PROGRAM="$ROOT/.venv/bin/ninja" \
    -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_BUILD_TYPE=Debug \
    -DPYSER_PYTHON_MODULE=ON \
    -DPYSER_SANITIZE="$sanitize" \
    -DPython_EXECUTABLE="$VENV_PY" \
    -Dpybind11_DIR="$("$VENV_PY" -m pybind11 --cmakedir)" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; exit 1; }
  "$ROOT/.venv/bin/cmake" --build "$dir" --target _core -j "$JOBS"

  local stage=$dir/stage
  rm -rf "$stage" && mkdir -p "$stage/pyser"
  for f in "$ROOT"/pyser/*.py; do ln -s "$f" "$stage/pyser/"; done
  ln -s "$ROOT/pyser/assets" "$stage/pyser/assets"
  cp "$dir"/_core*.so "$stage/pyser/"

  local venv=$dir/venv
  [ -x "$venv/bin/python" ] || "$VENV_PY" -m venv --without-pip "$venv"
  local site
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  printf '%s\n' "$stage" "$ROOT" \
    "$("$VENV_PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    >"$site/pyser_sanitized.pth"
}

# run NAME RUNTIME PYTEST_ARGS...: runs pytest in build/sanitize-NAME's
# environment with the sanitizer runtime preloaded.
run() {
  local name=$1 runtime=$2
  shift 2
  local dir=$ROOT/build/sanitize-$name
  local py=$dir/venv/bin/python
  local lib
  lib=$("$CXX" -print-file-name="$runtime")
  [ -f "$lib" ] || { echo "test_sanitized.sh: $runtime not found (install the g++ sanitizer runtimes)" >&2; exit 2; }
  # libstdc++ too: a runtime preloaded into the C interpreter finds no
  # __cxa_throw to intercept at start-up, and the first C++ exception then
  # aborts ("CHECK failed: ... real___cxa_throw").
  lib="$lib $("$CXX" -print-file-name=libstdc++.so.6)"
  # The staged module must be the one imported.
  LD_PRELOAD=$lib "$py" -c 'import pyser._core as c, sys; sys.exit(0 if "/sanitize-" in c.__file__ else f"wrong module {c.__file__}")'
  step "pytest under $name: $*"
  # ASan and TSan reports go to files, one per process (pytest's and its
  # children's); UBSan ignores log_path and writes to stderr, which
  # --capture=sys leaves uncaptured (an aborted pytest would lose what it
  # captured at the file-descriptor level).
  local reports=$dir/reports
  rm -rf "$reports" && mkdir -p "$reports"
  local log="log_path=$reports/report"
  # -p no:cacheprovider: the sanitized run leaves the normal run's cache alone.
  # HYPOTHESIS_STORAGE_DIRECTORY keeps hypothesis' example database apart too.
  local status=0
  (cd "$ROOT" && LD_PRELOAD=$lib HYPOTHESIS_STORAGE_DIRECTORY="$dir/hypothesis" \
    ASAN_OPTIONS="$ASAN_OPTIONS:$log" UBSAN_OPTIONS="$UBSAN_OPTIONS:$log" \
    TSAN_OPTIONS="$TSAN_OPTIONS:$log" "$py" -m pytest -q -p no:cacheprovider --capture=sys "$@") || status=$?
  if compgen -G "$reports/report*" >/dev/null; then
    for f in "$reports"/report*; do printf '\n== sanitizer report %s\n' "${f#$ROOT/}"; cat "$f"; done
    echo "test_sanitized.sh: $name reported errors (pytest exit $status)" >&2
    exit 1
  fi
  [ "$status" -eq 0 ] || { echo "test_sanitized.sh: pytest under $name failed ($status)" >&2; exit "$status"; }
}

# Sanitizer settings: every report is fatal and fails the run. Leak checking
# is off: the interpreter itself keeps memory until exit by design.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:report_signal_unsafe=0"
export PYTHONFAULTHANDLER=1
# Never put the working folder on sys.path (it holds the unsanitized pyser/),
# in this run and the child processes it starts.
export PYTHONSAFEPATH=1

# canary NAME RUNTIME REPORT CODE: CODE makes an error the sanitizer must
# report (in a libc call it intercepts, through ctypes). Unless the process
# then fails with a report containing REPORT, reports would not fail the run
# (or the runtime is not loaded), and the script stops.
canary() {
  local name=$1 runtime=$2 expected=$3 code=$4
  local dir=$ROOT/build/sanitize-$name/canary
  step "canary: $name must stop a deliberate error"
  rm -rf "$dir" && mkdir -p "$dir"
  local status=0
  {  # the braces' 2>/dev/null also silences bash's "Aborted" notice
    (LD_PRELOAD="$("$CXX" -print-file-name="$runtime") $("$CXX" -print-file-name=libstdc++.so.6)" \
      ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$dir/report" TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$dir/report" \
      "$ROOT/build/sanitize-$name/venv/bin/python" -c "$code") >/dev/null 2>&1 || status=$?
  } 2>/dev/null
  if [ "$status" -eq 0 ] || ! grep -qs "$expected" "$dir"/report*; then
    echo "test_sanitized.sh: $name let a deliberate error pass (exit $status, no '$expected'" \
      "report); sanitizer reports would not fail the run" >&2
    exit 1
  fi
  echo "ok: exit $status with a '$expected' report"
}

if [ "$WHICH" = all ] || [ "$WHICH" = asan ]; then
  build asan address,undefined
  canary asan libasan.so "AddressSanitizer: heap-buffer-overflow" '
import ctypes
a, b = ctypes.create_string_buffer(4096), ctypes.create_string_buffer(4096)
ctypes.memmove(b, a, 4097)  # one byte past both buffers'
  run asan libasan.so "${ASAN_TESTS[@]}"
fi
if [ "$WHICH" = all ] || [ "$WHICH" = tsan ]; then
  build tsan thread
  canary tsan libtsan.so "ThreadSanitizer: data race" '
import ctypes, threading
a, b = ctypes.create_string_buffer(1 << 20), ctypes.create_string_buffer(1 << 20)
def work():
    for _ in range(200):
        ctypes.memmove(a, b, 1 << 20)  # the GIL is released: two threads write a at once
threads = [threading.Thread(target=work) for _ in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]'
  run tsan libtsan.so "${TSAN_TESTS[@]}"
fi
step "sanitized tests passed"

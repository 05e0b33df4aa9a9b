#!/usr/bin/env python
"""The feature benchmark, run from a checkout; the code is `pyser.benchmarks.features`.

    python bench/bench_features.py                 # full run, ~1 min on 2 cores
    python bench/bench_features.py --quick         # smoke run
    python bench/bench_features.py --out FILE.md   # also write the Markdown report
    python bench/bench_features.py --no-perf       # skip the perf/g++ profile

Unlike ``pyser bench``, this script starts before numpy is imported, so it pins
the BLAS/OpenMP thread variables to 1 where they are sure to take effect (the
module also limits the pools with threadpoolctl when that is installed).
"""

import os
import sys

# The same names as pyser.benchmarks.features.THREAD_ENV_VARS, which cannot be
# imported before they are set: importing pyser loads numpy.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

if __name__ == "__main__":
    pinned = "numpy" not in sys.modules
    for var in THREAD_ENV_VARS:
        os.environ[var] = "1"

    from pyser.benchmarks.features import main

    sys.exit(main(env_pinned=pinned))

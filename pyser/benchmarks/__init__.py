"""Benchmarks that ship with pyser, run on the user's own machine by ``pyser bench``.

- `pyser.benchmarks.features`: feature throughput (offline, 10 ms streaming chunks,
  batch) against the peers that are installed, and a profile.
- `pyser.benchmarks.command`: the ``pyser bench`` command layer (`add_arguments`,
  `run`, `register`).
- `pyser.benchmarks.stream` (where present): streaming recognition latency.

Importing this package imports nothing and changes no thread setting; the
submodules load when a benchmark runs.
"""

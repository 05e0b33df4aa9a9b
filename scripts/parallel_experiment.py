"""Run the fold runs of one or more experiments as parallel worker processes (one GPU, or
many CPU cores), then assemble their tables with ``pyser experiment NAME --resume``.

    python scripts/parallel_experiment.py paper_pooled sweep_lambda_pooled \
        --workers 12 --deadline-s 480 --set device=cuda --set num_threads=1
    pyser experiment paper_pooled --resume      # every fold finished: tables and figures only

A work item is one (config, fold index) pair of an experiment; it trains that fold for every
seed of the config in turn. Items run in the order the experiments are named, so name the
most important first. Each finished fold run writes its ``result.json`` (what ``--resume``
skips on), so whatever finished before the deadline is kept; items not started by then are
left for a later call. An item that distils from teachers (``distill_teachers``) waits
until their fold runs have finished, so teachers and students can share one call. The
parent computes every config's features first (one process), so workers only read the
feature cache. A small CRNN leaves most of an H100/H200 idle, which is
why several processes share it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from pyser.training.config import load_experiment
from pyser.training.data import prepare_data
from pyser.training.distill import teacher_paths, teachers_ready
from pyser.training.experiments import _DATA_KEYS
from pyser.training.runtime import setup_runtime
from pyser.training.train import run


def work_items(names: list[str], overrides: list[str]) -> list[tuple[str, int, int]]:
    """(experiment, config index, fold) for every fold of every config, in naming order."""
    items = []
    for name in names:
        for i, cfg in enumerate(load_experiment(name, overrides).configs()):
            folds = cfg.folds or list(range(cfg.n_folds))
            items += [(name, i, k) for k in folds]
    return items


def item_teachers(name: str, index: int, fold: int, overrides: list[str]) -> list[Path]:
    """The teacher files that item (name, index, fold) distils from, over all its seeds."""
    cfg = load_experiment(name, overrides).configs()[index]
    return [p for repeat in range(len(cfg.seeds))
            for p in teacher_paths(cfg.distill_teachers, cfg.out_dir,
                                   SimpleNamespace(repeat=repeat, fold=fold))]


def next_ready(todo: list[tuple[str, int, int]], teachers: dict, idle: bool) -> int | None:
    """Index in ``todo`` of the first item whose teachers are ready; with nothing running
    (``idle``), the first item anyway (its run then names the missing teacher)."""
    for i, item in enumerate(todo):
        if teachers_ready(teachers[item]):
            return i
    return 0 if idle and todo else None


def prepare_features(names: list[str], overrides: list[str]) -> None:
    """Fill the feature cache once per distinct data setup, before workers start."""
    seen = set()
    for name in names:
        for cfg in load_experiment(name, overrides).configs():
            key = tuple(str(getattr(cfg, k)) for k in _DATA_KEYS)
            if key not in seen:
                seen.add(key)
                prepare_data(cfg, setup_runtime("cpu"))


def run_item(name: str, index: int, fold: int, overrides: list[str]) -> None:
    cfg = load_experiment(name, overrides).configs()[index].replace(folds=[fold])
    out = run(cfg, resume=True)
    if out["status"] != "done":
        raise SystemExit(f"{cfg.experiment} fold {fold} stopped at step {out.get('step')}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="+", help="experiment config names, most important first")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--deadline-s", type=float, default=None,
                   help="stop starting items, and end running ones, after this many seconds")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--item", nargs=3, metavar=("NAME", "INDEX", "FOLD"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.item:
        name, index, fold = args.item
        run_item(name, int(index), int(fold), args.overrides)
        return 0
    start = time.monotonic()
    prepare_features(args.names, args.overrides)
    todo = work_items(args.names, args.overrides)
    teachers = {item: item_teachers(*item, args.overrides) for item in todo}
    print(f"{len(todo)} items; features ready after {time.monotonic() - start:.0f} s", flush=True)
    sets = [a for o in args.overrides for a in ("--set", o)]
    running: list[tuple[subprocess.Popen, tuple]] = []
    failed = []
    while todo or running:
        late = args.deadline_s is not None and time.monotonic() - start > args.deadline_s
        for proc, item in list(running):
            if proc.poll() is not None:
                running.remove((proc, item))
                if proc.returncode != 0:
                    failed.append(item)
                print(f"{time.monotonic() - start:6.0f} s  done {item} rc {proc.returncode}",
                      flush=True)
            elif late:
                proc.terminate()
        if late:
            print(f"deadline: {len(todo)} items not started, {len(running)} ended", flush=True)
            for proc, _ in running:
                proc.wait()
            break
        while todo and len(running) < args.workers:
            i = next_ready(todo, teachers, idle=not running)
            if i is None:
                break
            item = todo.pop(i)
            cmd = [sys.executable, str(Path(__file__).resolve()), *args.names[:1], *sets,
                   "--item", *map(str, item)]
            running.append((subprocess.Popen(cmd), item))
        time.sleep(1.0)
    print(f"{time.monotonic() - start:.0f} s; failed items: {failed}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Two runs' test scores paired by fold: each run's mean ± std, and the second minus the
first in the same folds (mean ± std, folds better). This is how the tables of
docs/training.md set one setting against another.

    python scripts/compare_runs.py runs/sweep_lambda_pooled/center_lambda=0.3 \\
        runs/sweep_lambda_pooled/center_lambda=0.03            # best-dev and last step
    python scripts/compare_runs.py A B --part test_last --metric wa --json d.json

A run folder is ``out_dir/<experiment>`` (a variant's is ``out_dir/<experiment>/<variant>``,
a sweep point's ``out_dir/<experiment>/<key>=<value>``). Fold runs pair by (split seed,
fold), so a run made with ``--set seeds=[1]`` pairs with the second repeat of one made with
``seeds=[0,1]``; a shared fold whose sizes or class counts differ stops the script, as
the two did not test the same speakers. Folds only one run finished are named and left out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pyser._io import atomic_write_text, strict_json
from pyser.training.metrics import SCALAR_METRICS, paired_difference
from pyser.training.results import fold_results, paired_fold_scores

#: Result parts a fold run scores its test speakers on, and what tables call them.
PARTS = {
    "test": "best-dev weights",
    "test_last": "last-step weights",
    "test_unadapted": "best-dev weights, each utterance alone",
    "test_last_unadapted": "last-step weights, each utterance alone",
}


def compare(run_a: Path, run_b: Path, part: str, metric: str) -> dict:
    """The paired comparison of one result part and metric, as a JSON-ready dict."""
    a, b = fold_results(run_a), fold_results(run_b)
    keys, sa, sb = paired_fold_scores(a, b, part, metric)
    return {
        "a": str(run_a), "b": str(run_b), "part": part, "metric": metric,
        "folds": [{"split_seed": s, "fold": f, "a": x, "b": y}
                  for (s, f), x, y in zip(keys, sa, sb)],
        "a_summary": _mean_std(sa), "b_summary": _mean_std(sb),
        "b_minus_a": paired_difference(sa, sb),
        "only_a": sorted(set(a) - set(b)), "only_b": sorted(set(b) - set(a)),
    }


def _mean_std(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0}


def markdown(doc: dict) -> str:
    """The comparison as a Markdown table, in percent."""
    a, b, d = doc["a_summary"], doc["b_summary"], doc["b_minus_a"]
    title = f"{doc['metric'].upper()} %, test, {PARTS[doc['part']]}: A = {doc['a']}, B = {doc['b']}"
    lines = [title, "", "| split seed | fold | A | B | B − A |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['split_seed']} | {r['fold']} | {100 * r['a']:.1f} | {100 * r['b']:.1f} "
              f"| {100 * (r['b'] - r['a']):+.1f} |" for r in doc["folds"]]
    lines.append(f"| mean ± std | | {100 * a['mean']:.1f} ± {100 * a['std']:.1f} "
                 f"| {100 * b['mean']:.1f} ± {100 * b['std']:.1f} "
                 f"| {100 * d['mean']:+.1f} ± {100 * d['std']:.1f} |")
    lines += ["", f"B better in {d['better']} of {d['n']} fold runs."]
    for side in ("a", "b"):
        if doc[f"only_{side}"]:
            names = ", ".join(f"split seed {s} fold {f}" for s, f in doc[f"only_{side}"])
            lines.append(f"Only {side.upper()} finished {names}: left out.")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_a", type=Path, help="the reference run folder")
    p.add_argument("run_b", type=Path, help="the run set against it")
    p.add_argument("--part", choices=sorted(PARTS), action="append", default=None,
                   help="result part(s) to compare (default: test and test_last)")
    p.add_argument("--metric", choices=SCALAR_METRICS, default="ua")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the comparisons (fractions, not percent) here")
    args = p.parse_args()
    try:
        docs = [compare(args.run_a, args.run_b, part, args.metric)
                for part in args.part or ["test", "test_last"]]
    except (FileNotFoundError, ValueError) as exc:
        print(f"compare_runs.py: error: {exc}", file=sys.stderr)
        return 2
    print("\n\n".join(markdown(d) for d in docs))
    if args.json is not None:
        atomic_write_text(args.json, strict_json(docs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The classical baseline's files: ``results.json``, ``results.md`` and ``results.csv``.

Summaries use the CRNN's own functions (:func:`pyser.training.results.summarize_folds`,
:func:`pyser.training.results.summarize_by_corpus`): per fold, test UA/WA/macro-F1 over
the fold's test utterances, then mean ± std over folds; per corpus over the folds that
test it. So the baseline's numbers and the CRNN's ``results.md`` read the same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyser._io import atomic_write_text, strict_json
from pyser.training.baseline import ONLINE_PRIOR_UTTERANCES
from pyser.training.config import TrainConfig
from pyser.training.results import summarize_by_corpus, summarize_folds

__all__ = ["summarize_setting", "write_baseline_results"]

_METRICS = ("ua", "wa", "macro_f1")
#: The "speaker norm" column of results.md.
_NORM_NAMES = {"off": "off", "all": "all utterances", "online": "online (causal)"}


def summarize_setting(run: dict) -> dict:
    """``{"test": mean ± std and summed confusion, "test_by_corpus": {...}}`` of one
    setting's folds (``test_by_corpus`` only with several corpora)."""
    out = {"test": summarize_folds(run["folds"], "test")}
    by_corpus = summarize_by_corpus(run["folds"])
    if by_corpus:
        out["test_by_corpus"] = by_corpus
    return out


def write_baseline_results(
    exp_dir: Path,
    cfg: TrainConfig,
    info: dict,
    runs: Sequence[dict],
    grid: Any,
    timing: dict,
) -> dict:
    """results.json, results.md and results.csv in ``exp_dir``; returns ``{setting key:
    summary}``."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    summary = {run["setting"]: summarize_setting(run) for run in runs}
    doc = {
        "experiment": exp_dir.name,
        "config": cfg.to_dict(),
        "protocol": _protocol(grid),
        "data": info,
        "timing": timing,
        "summary": summary,
        "settings": list(runs),
    }
    atomic_write_text(exp_dir / "results.json", strict_json(doc, indent=1))
    atomic_write_text(exp_dir / "results.md", _markdown(exp_dir.name, cfg, info, runs, summary,
                                                        grid, timing))
    atomic_write_text(exp_dir / "results.csv", _csv(exp_dir.name, runs, summary))
    return summary


def _protocol(grid: Any) -> dict:
    """What results.json says about how the numbers were made."""
    return {
        "classifier": "sklearn SVC, RBF kernel (precomputed), class_weight='balanced'",
        "C": list(grid.C),
        "gamma_factors": list(grid.gamma_factors),
        "gamma": "gamma_factor / n_features",
        "inner_cv": f"GroupKFold by (corpus, speaker), up to {grid.inner_folds} folds, on the "
                    "outer fold's train + dev utterances; score: mean UA over inner folds",
        "scaler": "StandardScaler refitted on every inner training part and on train + dev",
        "nonfinite": "left out of means and stds, set to 0 after standardisation",
        "speaker_norm": {
            "all": "z-score per (corpus, speaker) over all of the speaker's utterances "
                   "(test speakers included, unlabelled)",
            "online": "z-score by the speaker's earlier utterances only, in the CRNN's test "
                      "stream order, shrunk toward the train + dev statistics by a prior of "
                      f"{ONLINE_PRIOR_UTTERANCES:g} utterances (train + dev walked alike)",
        },
        "audio": "whole utterances (no crop), pyser.audio.load_audio at 16 kHz",
    }


def _pct(s: dict) -> str:
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def _corpora(summary: dict) -> list[str]:
    return sorted({c for s in summary.values() for c in s.get("test_by_corpus", {})})


def _markdown(
    name: str,
    cfg: TrainConfig,
    info: dict,
    runs: Sequence[dict],
    summary: dict,
    grid: Any,
    timing: dict,
) -> str:
    """results.md: the data and protocol, the settings table, every fold, and the summed
    confusion matrix of the best setting."""
    counts = ", ".join(f"{k} {v}" for k, v in info["class_counts"].items())
    n_folds = len(runs[0]["folds"]) if runs else 0
    md = [
        f"# {name}",
        "",
        f"openSMILE functionals + RBF SVM in the folds of `{cfg.experiment}`: corpus "
        f"**{info['corpus']}** ({info['n_utterances']} utterances, task {cfg.task}: {counts}), "
        f"split **{info['split']}**, {n_folds} fold runs (seeds {list(cfg.seeds)}). Whole "
        f"utterances. C in {list(grid.C)}, gamma in {list(grid.gamma_factors)} / n_features, "
        f"chosen by speaker-grouped inner CV (up to {grid.inner_folds} folds) on train + dev, "
        "score UA; StandardScaler refitted per inner fold; non-finite features set to 0 "
        f"after standardisation. {timing.get('total_s', 0.0) / 60:.1f} min in all.",
        "",
    ]
    md += _settings_table(runs, summary)
    md += _folds_table(runs, _corpora(summary))
    md += _best_confusion(runs, summary, info["labels"])
    return "\n".join(md) + "\n"


def _settings_table(runs: Sequence[dict], summary: dict) -> list[str]:
    """One row per setting: pooled test UA/WA/macro-F1, then UA per corpus (mean ± std)."""
    corpora = _corpora(summary)
    head = "| features | speaker norm | UA % | WA % | macro-F1 % |" + "".join(
        f" {c} UA % |" for c in corpora
    )
    md = [
        "Test metrics, mean ± std over folds (per corpus: over the folds that test it, "
        "count in brackets):",
        "",
        head,
        "|---|---|" + "---:|" * (3 + len(corpora)),
    ]
    for run in runs:
        s = summary[run["setting"]]
        cells = [_pct(s["test"][m]) for m in _METRICS]
        for c in corpora:
            sc = s.get("test_by_corpus", {}).get(c)
            cells.append(f"{_pct(sc['ua'])} ({sc['ua']['n']})" if sc else "")
        norm = _NORM_NAMES[run["speaker_norm"]]
        md.append(f"| {run['feature_set']} | {norm} | " + " | ".join(cells) + " |")
    return md


def _folds_table(runs: Sequence[dict], corpora: list[str]) -> list[str]:
    """Every fold of every setting: the chosen C and gamma, inner and test metrics."""
    md = [
        "",
        "Per fold (gamma as a multiple of 1 / n_features; inner UA: the chosen point's mean "
        "over the inner folds):",
        "",
        "| features | speaker norm | fold | C | gamma | inner UA % | test UA % | test WA % "
        "| test macro-F1 % | test n |" + "".join(f" {c} UA % |" for c in corpora),
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(corpora),
    ]
    for run in runs:
        norm = _NORM_NAMES[run["speaker_norm"]]
        for f in run["folds"]:
            t = f["test"]
            cells = [
                f"r{f['repeat']} f{f['fold']}",
                f"{f['C']:g}",
                f"{f['gamma_factor']:g}",
                f"{100 * f['inner_ua']:.2f}",
                *(f"{100 * t[m]:.2f}" for m in _METRICS),
                str(f["sizes"]["test"]),
            ]
            by = f.get("test_by_corpus", {})
            cells += [f"{100 * by[c]['ua']:.2f}" if c in by else "" for c in corpora]
            md.append(f"| {run['feature_set']} | {norm} | " + " | ".join(cells) + " |")
    return md


def _best_confusion(runs: Sequence[dict], summary: dict, labels: Sequence[str]) -> list[str]:
    """The test confusion matrix of the setting with the best mean UA, summed over folds."""
    if not runs:
        return []
    best = max(runs, key=lambda r: summary[r["setting"]]["test"]["ua"]["mean"])
    mat = summary[best["setting"]]["test"]["confusion"]
    if mat is None:
        return []
    md = [
        "",
        f"Test confusion matrix of the best setting ({best['title']}), summed over folds "
        "(rows: true, columns: predicted):",
        "",
        "| | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    md += [f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |"
           for i, row in enumerate(mat)]
    return md


def _csv(name: str, runs: Sequence[dict], summary: dict) -> str:
    """results.csv: per setting, one row per fold, then ``mean``/``std`` rows, pooled and
    ``<corpus> mean``/``<corpus> std`` per corpus."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["experiment", "setting", "feature_set", "speaker_norm", "row", "C",
                "gamma_factor", "inner_ua", "test_ua", "test_wa", "test_macro_f1", "test_n"])
    for run in runs:
        lead = [name, run["setting"], run["feature_set"], run["speaker_norm"]]
        for f in run["folds"]:
            w.writerow(lead + [f"r{f['repeat']} f{f['fold']}", f"{f['C']:g}",
                               f"{f['gamma_factor']:g}", f"{f['inner_ua']:.6f}"]
                       + [f"{f['test'][m]:.6f}" for m in _METRICS] + [f["sizes"]["test"]])
        s = summary[run["setting"]]
        parts = [("", s["test"])] + [(f"{c} ", sc) for c, sc in
                                     s.get("test_by_corpus", {}).items()]
        for prefix, sc in parts:
            for stat in ("mean", "std"):
                w.writerow(lead + [f"{prefix}{stat}", "", "", ""]
                           + [f"{sc[m][stat]:.6f}" for m in _METRICS] + [""])
    return buf.getvalue()

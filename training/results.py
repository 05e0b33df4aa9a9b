"""Results and their files: a fold's (``model.pt`` with provenance, ``result.json``,
``embeddings.npz``, ``final_state.pt``, ``weights_<step>.pt``) and a run's summaries over
folds and repeats (``results.json``, ``results.md``, ``results.csv``)."""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyser import __version__ as pyser_version
from pyser._io import atomic_write, atomic_write_text, strict_json
from pyser.model import ModelMetadata, load_model, save_model
from pyser.training.checkpoint import torch_save
from pyser.training.config import TrainConfig
from pyser.training.data import PreparedData
from pyser.training.distill import teacher_paths
from pyser.training.metrics import summarize

__all__ = [
    "fold_identity",
    "fold_provenance",
    "fold_results",
    "fold_weights",
    "paired_fold_scores",
    "parse_weights_step",
    "summarize_by_corpus",
    "summarize_folds",
    "weights_choice",
    "weights_label",
    "write_fold",
    "write_results",
]


def fold_identity(cfg: TrainConfig, data: PreparedData, fold: Any) -> dict:
    """Which fold of which split a run trains on, as its model file's provenance names it:
    corpus, task, split, n_folds, split_seed and fold."""
    return {
        "corpus": data.info["corpus"],
        "task": cfg.task,
        "split": data.split_kind,
        "n_folds": cfg.n_folds,
        "split_seed": fold.seed,
        "fold": int(fold.fold),
    }


def fold_weights(folder: Path, which: str = "last") -> dict[str, Tensor]:
    """A finished fold run's weights: ``"last"`` (``final_state.pt``, what a split "all"
    model keeps), ``"best"`` (``model.pt``, the best-dev weights) or ``"step:N"`` (the
    weights after step N, ``weights_N.pt``, kept by a run with ``keep_weights_every``)."""
    if which == "last":
        return torch.load(folder / "final_state.pt", weights_only=True)
    if which == "best":
        return load_model(folder / "model.pt")[0].state_dict()
    step = parse_weights_step(which)
    path = folder / f"weights_{step}.pt"
    if not path.is_file():
        kept = sorted(int(n) for p in folder.glob("weights_*.pt")
                      if (n := p.stem.removeprefix("weights_")).isdigit())
        raise FileNotFoundError(f"{path} does not exist: the run kept the weights of steps "
                                f"{kept or 'none'} (config keep_weights_every)")
    return torch.load(path, weights_only=True)


def weights_choice(text: str) -> str:
    """``text`` if it names weights :func:`fold_weights` loads (``last``, ``best``,
    ``step:N``): an argparse ``type`` for the scripts' ``--weights``."""
    if text not in ("last", "best"):
        try:
            parse_weights_step(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def weights_label(which: str) -> str:
    """How tables name a weights choice: last-step, best-dev or step-N."""
    if which in ("last", "best"):
        return {"last": "last-step", "best": "best-dev"}[which]
    return f"step-{parse_weights_step(which)}"


def parse_weights_step(which: str) -> int:
    """N of a ``"step:N"`` weights choice (see :func:`fold_weights`)."""
    kind, _, n = which.partition(":")
    if kind != "step" or not n.isdigit() or int(n) < 1:
        raise ValueError(f"weights must be 'last', 'best' or 'step:N' (N >= 1), got {which!r}")
    return int(n)


def fold_provenance(cfg: TrainConfig, data: PreparedData, fold: Any, result: dict) -> dict:
    """What a fold's model file says about how it was made."""
    return {
        **fold_identity(cfg, data, fold),
        "data_root": data.info["data_root"],
        "repeat": int(fold.repeat),
        "train_utterances": result["sizes"]["train"],
        "train_class_counts": result["class_counts"]["train"],
        "best_step": result["best_step"],
        "steps": cfg.steps,
        "metrics": {
            k: {m: result[k][m] for m in ("ua", "wa", "macro_f1")}
            for k in ("dev", "test", "train")
            if k in result and not (k == "train" and "test" in result)
        },
        "max_seconds": cfg.max_seconds,
        "crop_eval": cfg.crop_eval,
        "center_lambda": cfg.center_lambda,
        "center_alpha": cfg.center_alpha,
        "experiment": cfg.experiment,
        **_distill_provenance(cfg, fold),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "pyser_version": pyser_version,
        "trainer": "pyser.training.train",
    }


def _distill_provenance(cfg: TrainConfig, fold: Any) -> dict:
    """``{"distill": {teachers, weight, temperature}}`` for a distilled run, else {}."""
    if not cfg.distill_teachers:
        return {}
    return {"distill": {"teachers": [str(p) for p in teacher_paths(cfg.distill_teachers,
                                                                   cfg.out_dir, fold)],
                        "weight": cfg.distill_weight,
                        "temperature": cfg.distill_temperature}}


def write_fold(
    out_dir: Path,
    cfg: TrainConfig,
    data: PreparedData,
    fold: Any,
    result: dict,
    model: nn.Module,
    final_state: dict[str, Tensor],
    embeddings: dict[str, np.ndarray] | None,
    adaptation: dict | None = None,
) -> None:
    """A finished fold's files in ``out_dir``: ``model.pt`` (the tested weights, a
    ``pyser.model.save_model`` file, left on the CPU), ``embeddings.npz`` (when given),
    ``final_state.pt`` (the last step's weights) and ``result.json`` (written last: it marks
    the fold done)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = ModelMetadata(
        labels=list(data.labels),
        feature_config=data.feature_config.to_dict(),
        provenance=fold_provenance(cfg, data, fold, result),
        speaker_adaptation=adaptation or {},
    )
    save_model(out_dir / "model.pt", model.to("cpu"), meta)
    if embeddings is not None:
        atomic_write(out_dir / "embeddings.npz", lambda f: np.savez_compressed(f, **embeddings))
    torch_save(final_state, out_dir / "final_state.pt")
    atomic_write_text(out_dir / "result.json", strict_json(result, indent=1))


def fold_results(run_dir: Path) -> dict[tuple[int, int], dict]:
    """The finished fold runs of a run folder (``out_dir/<experiment>``, holding
    ``folds/r<repeat>_f<fold>/result.json``), keyed by (split seed, fold): the key two
    runs share when they test the same speakers, whatever their repeat index.

    Raises:
        FileNotFoundError: when ``run_dir`` holds no finished fold run.
        ValueError: when two of its fold runs share a split seed and fold.
    """
    out: dict[tuple[int, int], dict] = {}
    for path in sorted(Path(run_dir).glob("folds/r*_f*/result.json")):
        result = json.loads(path.read_text())
        key = (int(result["split_seed"]), int(result["fold"]))
        if key in out:
            raise ValueError(f"{run_dir} has two fold runs of split seed {key[0]}, fold "
                             f"{key[1]}; compare one repeat at a time")
        out[key] = result
    if not out:
        raise FileNotFoundError(f"{run_dir} holds no finished fold run "
                                f"(folds/r*_f*/result.json)")
    return out


#: What two fold runs must share to be scored on the same speakers.
_SPLIT_FIELDS = ("split", "sizes", "sizes_by_corpus", "class_counts")


def paired_fold_scores(
    a: dict[tuple[int, int], dict], b: dict[tuple[int, int], dict], key: str = "test_last",
    metric: str = "ua",
) -> tuple[list[tuple[int, int]], list[float], list[float]]:
    """The (split seed, fold) pairs both runs finished, sorted, and each run's ``metric``
    of result part ``key`` on them (``test``: best-dev weights, ``test_last``: last step).

    Raises:
        ValueError: when no fold is shared; when a shared fold's split differs (its sizes
            or class counts), which means the two runs did not test the same speakers; or
            when a fold result has no part ``key`` (naming the parts it has).
    """
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError(f"the runs share no (split seed, fold): {sorted(a)} and {sorted(b)}")
    for k in shared:
        differs = [f for f in _SPLIT_FIELDS if a[k].get(f) != b[k].get(f)]
        if differs:
            raise ValueError(f"split seed {k[0]}, fold {k[1]}: the runs' {', '.join(differs)} "
                             f"differ, so they did not test the same speakers")
    for k in shared:
        for run in (a, b):
            if key not in run[k]:
                raise ValueError(f"split seed {k[0]}, fold {k[1]} has no {key!r} scores; parts "
                               f"there: {sorted(p for p in run[k] if p.startswith('test'))}")
    return (shared, [float(a[k][key][metric]) for k in shared],
            [float(b[k][key][metric]) for k in shared])


def summarize_folds(results: Sequence[dict], split: str = "test") -> dict:
    """Mean ± std of UA/WA/macro-F1 over all folds and repeats, plus per-repeat means."""
    reports = [dict(r[split], confusion=np.asarray(r[split]["confusion"])) for r in results]
    s = summarize(reports)
    out = {m: s[m] for m in ("ua", "wa", "macro_f1")}
    out["confusion"] = s["confusion"].tolist() if "confusion" in s else None
    repeats = sorted({r["repeat"] for r in results})
    if len(repeats) > 1:
        per = [
            summarize([rep for rep, r in zip(reports, results) if r["repeat"] == k])
            for k in repeats
        ]
        out["over_repeats"] = {
            m: {
                "mean": float(np.mean([p[m]["mean"] for p in per])),
                "std": float(np.std([p[m]["mean"] for p in per], ddof=1)),
                "n": len(per),
            }
            for m in ("ua", "wa", "macro_f1")
        }
    return out


def summarize_by_corpus(results: Sequence[dict], key: str = "test_by_corpus") -> dict:
    """Per corpus: mean ± std of test UA/WA/macro-F1 over the folds (and repeats) that test
    it (``n``: how many), from each fold's ``key``; {} for single-corpus runs."""
    corpora = sorted({c for r in results for c in r.get(key, {})})
    out = {}
    for c in corpora:
        reports = [r[key][c] for r in results if c in r.get(key, {})]
        s = summarize([dict(rep, confusion=np.asarray(rep["confusion"])) for rep in reports])
        out[c] = {m: s[m] for m in ("ua", "wa", "macro_f1")}
        out[c]["confusion"] = s["confusion"].tolist() if "confusion" in s else None
    return out


def summarize_calibration(results: Sequence[dict], key: str = "calibration") -> dict:
    """Mean ± std (and n) over the folds of each calibration figure (temperature, ECE and
    NLL before and after) under ``key`` ("calibration": the tested, best-dev weights;
    "calibration_last": the last step's); {} when no fold has them (older pyser)."""
    cal = [r[key] for r in results if key in r]
    if not cal:
        return {}
    return {
        k: {
            "mean": float(np.mean([c[k] for c in cal])),
            "std": float(np.std([c[k] for c in cal], ddof=1)) if len(cal) > 1 else 0.0,
            "n": len(cal),
        }
        for k in cal[0]
    }


def write_results(exp_dir: Path, cfg: TrainConfig, info: dict, results: Sequence[dict]) -> dict:
    """results.json, results.md and results.csv in ``exp_dir``; returns the summary dict
    (``test``, ``dev``, and with several corpora ``test_by_corpus``)."""
    if any("test" not in r for r in results):  # split "all": a final model, no held-out part
        return _write_final(exp_dir, cfg, info, results)
    summary = {"test": summarize_folds(results, "test"), "dev": summarize_folds(results, "dev")}
    by_corpus = summarize_by_corpus(results)
    if by_corpus:
        summary["test_by_corpus"] = by_corpus
    if all("test_last" in r for r in results):
        summary["test_last"] = summarize_folds(results, "test_last")
    for key in ("test_unadapted", "test_last_unadapted"):  # adaptation: utterances alone
        if all(key in r for r in results):
            summary[key] = summarize_folds(results, key)
    for key in ("test_unadapted", "test_last", "test_last_unadapted"):
        by_corpus = summarize_by_corpus(results, f"{key}_by_corpus")
        if by_corpus:
            summary[f"{key}_by_corpus"] = by_corpus
    for key in ("calibration", "calibration_last"):
        calibration = summarize_calibration(results, key)
        if calibration:
            summary[key] = calibration
    _write_json(exp_dir, cfg, info, summary, results)
    rows = _fold_rows(results)
    atomic_write_text(exp_dir / "results.md", _results_markdown(cfg, info, summary, rows))
    atomic_write_text(exp_dir / "results.csv", _results_csv(cfg, summary, rows))
    return summary


def _write_json(
    exp_dir: Path, cfg: TrainConfig, info: dict, summary: dict, results: Sequence[dict]
) -> None:
    """results.json: the config, the data, the summary and the folds (without histories)."""
    doc = {
        "experiment": cfg.experiment,
        "config": cfg.to_dict(),
        "data": info,
        "summary": summary,
        "folds": [{k: v for k, v in r.items() if k != "history"} for r in results],
    }
    atomic_write_text(exp_dir / "results.json", strict_json(doc, indent=1))


def _write_final(exp_dir: Path, cfg: TrainConfig, info: dict, results: Sequence[dict]) -> dict:
    """results.json and results.md of a run on every utterance (split "all"): its training
    metrics only; held-out figures come from the cross-validation that chose the recipe."""
    summary = {"train": summarize_folds(results, "train")}
    _write_json(exp_dir, cfg, info, summary, results)
    t = summary["train"]
    md = [
        f"# {cfg.experiment}",
        "",
        f"Trained on every utterance of **{info['corpus']}** ({info['n_utterances']} "
        f"utterances, {info['n_speakers']} speakers, task {cfg.task}) for {cfg.steps} steps; "
        "there is no dev or test part, so held-out metrics come from the cross-validation "
        "of the same recipe.",
        "",
        f"Training-set UA {_pct(t['ua']['mean'])} %, WA {_pct(t['wa']['mean'])} %, "
        f"macro-F1 {_pct(t['macro_f1']['mean'])} %.",
    ]
    atomic_write_text(exp_dir / "results.md", "\n".join(md) + "\n")
    return summary


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _fold_rows(results: Sequence[dict]) -> list[tuple]:
    """(fold name, best step, test UA, WA, macro-F1, test n) per fold."""
    return [
        (
            f"r{r['repeat']} f{r['fold']}",
            r["best_step"],
            r["test"]["ua"],
            r["test"]["wa"],
            r["test"]["macro_f1"],
            r["sizes"]["test"],
        )
        for r in results
    ]


def _results_markdown(cfg: TrainConfig, info: dict, summary: dict, rows: list[tuple]) -> str:
    """results.md: the data, one row per fold, mean ± std and the summed confusion matrix."""
    pct = _pct
    labels = info["labels"]
    s = summary["test"]
    md = [
        f"# {cfg.experiment}",
        "",
        f"Corpus **{info['corpus']}** ({info['n_utterances']} utterances, task {cfg.task}: "
        + ", ".join(f"{k} {v}" for k, v in info["class_counts"].items())
        + f"), split **{info['split']}**, features **{cfg.feature_kind}**, "
        f"lambda {cfg.center_lambda}, alpha {cfg.center_alpha}, {cfg.steps} steps.",
        "",
    ]
    n_excluded = sum(info.get("excluded", {}).values())
    if n_excluded or info.get("n_skipped"):
        md += [
            f"{n_excluded} utterances excluded (emotions outside the task: "
            + (", ".join(f"{k} {v}" for k, v in sorted(info["excluded"].items())) or "none")
            + f"); {info.get('n_skipped', 0)} files skipped (bad names, unreadable or "
            "undecodable audio; listed in results.json under data.skipped).",
            "",
        ]
    md += [
        "| fold | best step | test UA % | test WA % | test macro-F1 % | test n |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {f} | {b} | {pct(ua)} | {pct(wa)} | {pct(f1)} | {n} |" for f, b, ua, wa, f1, n in rows
    ]
    md.append(
        f"| **mean ± std** | | **{pct(s['ua']['mean'])} ± {pct(s['ua']['std'])}** | "
        f"**{pct(s['wa']['mean'])} ± {pct(s['wa']['std'])}** | "
        f"**{pct(s['macro_f1']['mean'])} ± {pct(s['macro_f1']['std'])}** | |"
    )
    md += _corpus_markdown(summary.get("test_by_corpus", {}), info)
    if "test_unadapted" in summary:
        alone = summary["test_unadapted"]
        md += [
            "",
            "Online speaker adaptation: the table scores each test speaker's utterances as one "
            "stream, each adapted by those before it. Each utterance alone (no history, as "
            f"`Recognizer.predict` without a speaker): test UA {pct(alone['ua']['mean'])} ± "
            f"{pct(alone['ua']['std'])} %, WA {pct(alone['wa']['mean'])} ± "
            f"{pct(alone['wa']['std'])} %"
            + "".join(f"; {c} UA {pct(v['ua']['mean'])} ± {pct(v['ua']['std'])} %"
                      for c, v in summary.get("test_unadapted_by_corpus", {}).items())
            + ".",
        ]
    if "test_last" in summary:
        last = summary["test_last"]
        md += [
            "",
            "The last step's weights, with no dev selection (what a `split = \"all\"` model "
            f"keeps): test UA {pct(last['ua']['mean'])} ± {pct(last['ua']['std'])} %, WA "
            f"{pct(last['wa']['mean'])} ± {pct(last['wa']['std'])} %, macro-F1 "
            f"{pct(last['macro_f1']['mean'])} ± {pct(last['macro_f1']['std'])} %.",
        ]
        md += _calibration_markdown(summary.get("calibration_last", {}), "the last step's weights")
    md += _calibration_markdown(summary.get("calibration", {}), "the tested weights")
    if s.get("confusion") is not None:
        md += [
            "",
            "Test confusion matrix, summed over folds (rows: true, columns: predicted):",
            "",
            "| | " + " | ".join(labels) + " |",
            "|---|" + "---:|" * len(labels),
        ]
        md += [
            f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |"
            for i, row in enumerate(s["confusion"])
        ]
    return "\n".join(md) + "\n"


def _calibration_markdown(cal: dict, of: str) -> list[str]:
    """results.md lines on temperature scaling; [] without calibration figures."""
    if not cal:
        return []

    def pm(k: str, scale: float = 100.0, digits: int = 1) -> str:
        return f"{scale * cal[k]['mean']:.{digits}f} ± {scale * cal[k]['std']:.{digits}f}"

    return [
        "",
        f"Calibration of {of} ({cal['temperature']['n']} folds): temperature fitted on dev "
        f"T = {pm('temperature', 1.0, 2)}; test expected calibration error "
        f"{pm('test_ece_before')} % before, {pm('test_ece_after')} % after; test NLL "
        f"{pm('test_nll_before', 1.0, 3)} before, {pm('test_nll_after', 1.0, 3)} after.",
    ]


def _corpus_markdown(by_corpus: dict, info: dict) -> list[str]:
    """results.md lines of a multi-corpus run: each corpus's data and test metrics (mean ±
    std over the folds that test it), then the pooled row; [] for a single corpus."""
    if not by_corpus:
        return []
    pct = _pct
    corpora = info.get("corpora", {})
    md = [
        "",
        "Test metrics per corpus (mean ± std over the folds that test the corpus):",
        "",
        "| corpus | utterances | excluded by the task | folds tested | test UA % | test WA % "
        "| test macro-F1 % |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for c, m in by_corpus.items():
        meta = corpora.get(c, {})
        excluded = ", ".join(f"{k} {v}" for k, v in meta.get("excluded", {}).items()) or "none"
        md.append(
            f"| {c} | {meta.get('n_utterances', '')} | {excluded} | {m['ua']['n']} | "
            + " | ".join(f"{pct(m[k]['mean'])} ± {pct(m[k]['std'])}" for k in ("ua", "wa",
                                                                             "macro_f1"))
            + " |"
        )
    return md


def _results_csv(cfg: TrainConfig, summary: dict, rows: list[tuple]) -> str:
    """results.csv: one row per fold, then the mean and std rows (pooled, then ``<corpus> mean``
    and ``<corpus> std`` per corpus in multi-corpus runs)."""
    s = summary["test"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["experiment", "row", "best_step", "test_ua", "test_wa", "test_macro_f1", "test_n"])
    for f, b, ua, wa, f1, n in rows:
        w.writerow([cfg.experiment, f, b, f"{ua:.6f}", f"{wa:.6f}", f"{f1:.6f}", n])
    pooled_and_corpora = [("", s)] + [
        (f"{c} ", sc) for c, sc in summary.get("test_by_corpus", {}).items()
    ]
    for prefix, summ in pooled_and_corpora:
        _csv_summary_rows(w, cfg, prefix, summ)
    return buf.getvalue()


def _csv_summary_rows(w: Any, cfg: TrainConfig, prefix: str, s: dict) -> None:
    """The ``<prefix>mean`` and ``<prefix>std`` rows of one summary (pooled or a corpus)."""
    for stat in ("mean", "std"):
        w.writerow(
            [
                cfg.experiment,
                f"{prefix}{stat}",
                "",
                f"{s['ua'][stat]:.6f}",
                f"{s['wa'][stat]:.6f}",
                f"{s['macro_f1'][stat]:.6f}",
                "",
            ]
        )

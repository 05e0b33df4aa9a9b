"""The paper's experiments, one command each, with a results table and figures.

    pyser experiment paper              # Mel/STFT x with/without center loss (4 runs)
    pyser experiment sweep_lambda       # lambda in {0, 0.003, 0.03, 0.3, 3}, alpha 0.5
    pyser experiment sweep_alpha        # alpha in {0.1, 0.3, 0.5, 0.7, 0.9}, lambda 0.3
    pyser experiment paper_mel_center   # any single config (name in training/configs, or a path)
    pyser experiment paper --set corpus=emodb --set steps=1000 --resume

Every run goes through ``pyser.training.train.run`` (so ``--resume`` continues interrupted
folds and skips finished ones). Results land in ``out_dir/<experiment>/``; the collected
table is ``summary.md`` / ``summary.csv`` and the figures are PNGs next to it:

* ``paper``: ``confusion_<setting>.png`` and ``pca_mel.png`` / ``pca_stft.png`` (z of
  fold r0 f0 on train and test, softmax only vs softmax + center loss, as the paper's
  figure); ``--set`` overrides apply to all four settings (e.g. the corpus).
* sweeps: ``<key>.png`` (UA and WA against the swept value) and the table.
* a single config: ``confusion.png`` and ``pca.png``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyser._io import atomic_write_text
from pyser.training.config import CONFIG_DIR, ExperimentSpec, TrainConfig, load_experiment
from pyser.training.data import PreparedData, prepare_data
from pyser.training.runtime import setup_runtime
from pyser.training.train import run

__all__ = ["EXPERIMENTS", "PAPER_SETTINGS", "list_experiments", "run_experiment"]

log = logging.getLogger(__name__)

#: The paper's four settings: (config name, short label).
PAPER_SETTINGS = (
    ("paper_mel_plain", "Mel, softmax"),
    ("paper_mel_center", "Mel, softmax + center loss"),
    ("paper_stft_plain", "STFT, softmax"),
    ("paper_stft_center", "STFT, softmax + center loss"),
)
EXPERIMENTS = {
    "paper": "the four settings: Mel/STFT x softmax with/without center loss",
    "sweep_lambda": "lambda in {0, 0.003, 0.03, 0.3, 3} at alpha 0.5 (Mel)",
    "sweep_alpha": "alpha in {0.1, 0.3, 0.5, 0.7, 0.9} at lambda 0.3 (Mel)",
}


def list_experiments() -> dict[str, str]:
    """Experiment names: the composite ones plus every bundled config."""
    out = dict(EXPERIMENTS)
    for p in sorted(CONFIG_DIR.glob("*.toml")):
        out.setdefault(p.stem, (p.read_text().splitlines() or ["config"])[0].lstrip("# "))
    return out


# ---------------------------------------------------------------------- data sharing

_DATA_KEYS = (
    "corpus",
    "data_root",
    "task",
    "feature_kind",
    "features",
    "max_seconds",
    "crop_eval",
    "cache_dir",
    "preload",
    "split",
    "n_folds",
    "seeds",
    "folds",
)


class _DataPool:
    """Reuse PreparedData between runs that differ only in training settings."""

    def __init__(self) -> None:
        self._pool: dict[str, PreparedData] = {}

    def get(self, cfg: TrainConfig) -> PreparedData:
        key = json.dumps({k: getattr(cfg, k) for k in _DATA_KEYS}, sort_keys=True)
        if key not in self._pool:
            self._pool.clear()  # hold one corpus's features at a time
            self._pool[key] = prepare_data(cfg, setup_runtime(cfg.device))
        return self._pool[key]


def _run_all(configs: Sequence[TrainConfig], resume: bool, pool: _DataPool) -> list[dict]:
    outs = []
    for cfg in configs:
        log.info("experiment %s", cfg.experiment)
        out = run(cfg, resume=resume, data=pool.get(cfg))
        if out["status"] != "done":
            raise RuntimeError(f"{cfg.experiment} stopped at step {out.get('step')}")
        outs.append(out)
    return outs


def _is_main(outs: Any) -> bool:
    """False on torch.distributed ranks other than 0 (they have no summaries to write)."""
    return all(o.get("summary") is not None for o in outs)


# ---------------------------------------------------------------------- tables


def _pm(s: dict) -> str:
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def write_table(rows: Sequence[dict], out_dir: Path, title: str, note: str = "") -> None:
    """summary.md and summary.csv from rows of {"name", "value"?, "summary", "n_runs", ...}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", ""]
    if note:
        md += [note, ""]
    corpora = sorted({c for r in rows for c in (r.get("by_corpus") or {})})
    md += [
        "| setting | features | λ | α | test UA % | test WA % | test macro-F1 % | runs |"
        + "".join(f" UA {c} % |" for c in corpora),
        "|---|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(corpora),
    ]
    for r in rows:
        s = r["summary"]
        by_corpus = r.get("by_corpus") or {}
        md.append(
            f"| {r['name']} | {r['features']} | {r['lambda']:g} | {r['alpha']:g} | "
            f"{_pm(s['ua'])} | {_pm(s['wa'])} | {_pm(s['macro_f1'])} | {s['ua']['n']} |"
            + "".join(
                f" {_pm(by_corpus[c]['ua'])} |" if c in by_corpus else " – |" for c in corpora
            )
        )
    atomic_write_text(out_dir / "summary.md", "\n".join(md) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "setting",
            "experiment",
            "features",
            "lambda",
            "alpha",
            "ua_mean",
            "ua_std",
            "wa_mean",
            "wa_std",
            "macro_f1_mean",
            "macro_f1_std",
            "runs",
        ]
    )
    for r in rows:
        s = r["summary"]
        w.writerow(
            [
                r["name"],
                r["experiment"],
                r["features"],
                r["lambda"],
                r["alpha"],
                f"{s['ua']['mean']:.6f}",
                f"{s['ua']['std']:.6f}",
                f"{s['wa']['mean']:.6f}",
                f"{s['wa']['std']:.6f}",
                f"{s['macro_f1']['mean']:.6f}",
                f"{s['macro_f1']['std']:.6f}",
                s["ua"]["n"],
            ]
        )
    atomic_write_text(out_dir / "summary.csv", buf.getvalue())


def _row(name: str, cfg: TrainConfig, out: dict) -> dict:
    return {
        "name": name,
        "experiment": cfg.experiment,
        "features": cfg.feature_kind,
        "lambda": cfg.center_lambda,
        "alpha": cfg.center_alpha,
        "summary": out["summary"]["test"],
        "by_corpus": out["summary"].get("test_by_corpus"),
        "dir": out["dir"],
    }


# ---------------------------------------------------------------------- figures


def _first_embeddings(out: dict) -> dict | None:
    """embeddings.npz of the first fold of a run (None if the run did not save them)."""
    for f in out["folds"]:
        p = Path(out["dir"]) / "folds" / f"r{f['repeat']}_f{f['fold']}" / "embeddings.npz"
        if p.is_file():
            with np.load(p) as d:
                return {k: d[k] for k in d.files}
    return None


def _pca_panels(named_outs: Sequence[tuple[str, dict]]) -> list:
    from pyser.training.plots import pca_fit

    panels = []
    for name, out in named_outs:
        e = _first_embeddings(out)
        if e is None:
            continue
        fit = pca_fit(e["z_train"])
        panels.append((f"{name}: train", e["z_train"], e["y_train"], fit))
        panels.append((f"{name}: test", e["z_test"], e["y_test"], fit))
    return panels


def _confusion_figure(out: dict, path: Path, title: str) -> None:
    from pyser.training.plots import plot_confusion

    cm = out["summary"]["test"].get("confusion")
    if cm is not None:
        plot_confusion(cm, out["data"]["labels"], path, title)


# ---------------------------------------------------------------------- experiments


def run_paper(overrides: Sequence[str] = (), resume: bool = False) -> dict:
    """The four settings; table and figures in ``out_dir/paper``."""
    from pyser.training.plots import plot_pca

    pool = _DataPool()
    specs = [(load_experiment(name, overrides).config, label) for name, label in PAPER_SETTINGS]
    outs = {label: _run_all([cfg], resume, pool)[0] for cfg, label in specs}
    if not _is_main(outs.values()):
        return {}
    out_dir = Path(specs[0][0].out_dir) / "paper"
    rows = [_row(label, cfg, outs[label]) for cfg, label in specs]
    info = outs[specs[0][1]]["data"]
    write_table(
        rows,
        out_dir,
        "Dai et al. (ICASSP 2019): softmax vs softmax + center loss",
        note=f"Corpus {info['corpus']} ({info['n_utterances']} utterances), "
        f"{info['split']} split; mean ± std over {rows[0]['summary']['ua']['n']} "
        "fold runs.",
    )
    for cfg, label in specs:
        _confusion_figure(outs[label], out_dir / f"confusion_{cfg.experiment}.png", label)
    labels = info["labels"]
    for kind in ("mel", "stft"):
        panels = _pca_panels([(lab, outs[lab]) for cfg, lab in specs if cfg.feature_kind == kind])
        if panels:
            plot_pca(
                panels,
                labels,
                out_dir / f"pca_{kind}.png",
                title=f"PCA of z ({kind}), fold 0: softmax vs softmax + center loss",
            )
    return {"dir": str(out_dir), "rows": rows}


def run_sweep(spec: ExperimentSpec, resume: bool = False) -> dict:
    """One run per sweep value; table, ``<key>.png``, confusion matrices and the PCA of z
    per value in ``out_dir/<experiment>``."""
    from pyser.training.plots import plot_pca, plot_sweep

    configs = spec.configs()
    outs = _run_all(configs, resume, _DataPool())
    if not _is_main(outs):
        return {}
    key = spec.sweep_key
    out_dir = Path(spec.config.out_dir) / spec.config.experiment
    rows = [
        _row(f"{key} = {v:g}", cfg, out) for v, cfg, out in zip(spec.sweep_values, configs, outs)
    ]
    write_table(rows, out_dir, f"{spec.config.experiment}: {key} sweep")
    plot_sweep(
        spec.sweep_values,
        [r["summary"] for r in rows],
        key,
        out_dir / f"{key}.png",
        title=f"{spec.config.experiment} ({spec.config.corpus_label()})",
    )
    named = [(f"{key}={v:g}", out) for v, out in zip(spec.sweep_values, outs)]
    for name, out in named:
        _confusion_figure(out, out_dir / f"confusion_{name}.png", name)
    panels = _pca_panels(named)
    if panels:
        plot_pca(panels, outs[0]["data"]["labels"], out_dir / "pca.png",
                 title=f"PCA of z, first fold, by {key}")
    return {"dir": str(out_dir), "rows": rows}


def run_variants(spec: ExperimentSpec, resume: bool = False) -> dict:
    """One run per ``[variants.NAME]`` (an ablation); table (pooled and per-corpus UA), a
    confusion matrix per variant and, for variants that save embeddings, ``pca_<kind>.png``
    (z of the first fold, per feature kind) in ``out_dir/<experiment>``."""
    from pyser.training.plots import plot_pca

    configs = spec.configs()
    outs = _run_all(configs, resume, _DataPool())
    if not _is_main(outs):
        return {}
    out_dir = Path(spec.config.out_dir) / spec.config.experiment
    rows = [_row(name, cfg, out) for name, cfg, out in zip(spec.variants, configs, outs)]
    changes = "; ".join(
        f"{name}: " + (", ".join(f"{k} = {v}" for k, v in ch.items()) or "the base config")
        for name, ch in spec.variants.items()
    )
    write_table(rows, out_dir, f"{spec.config.experiment}: ablation", note=f"Variants: {changes}.")
    for name, out in zip(spec.variants, outs):
        _confusion_figure(out, out_dir / f"confusion_{name}.png", name)
    for kind in sorted({cfg.feature_kind for cfg in configs}):
        named = [(n, o) for n, c, o in zip(spec.variants, configs, outs) if c.feature_kind == kind]
        panels = _pca_panels(named)
        if panels:
            plot_pca(panels, outs[0]["data"]["labels"], out_dir / f"pca_{kind}.png",
                     title=f"PCA of z ({kind}), first fold")
    return {"dir": str(out_dir), "rows": rows}


def run_single(spec: ExperimentSpec, resume: bool = False) -> dict:
    from pyser.training.plots import plot_pca

    cfg = spec.config
    (out,) = _run_all([cfg], resume, _DataPool())
    if not _is_main([out]):
        return {}
    out_dir = Path(out["dir"])
    rows = [_row(cfg.experiment, cfg, out)]
    write_table(rows, out_dir, cfg.experiment)
    _confusion_figure(out, out_dir / "confusion.png", cfg.experiment)
    panels = _pca_panels([(cfg.experiment, out)])
    if panels:
        plot_pca(panels, out["data"]["labels"], out_dir / "pca.png")
    return {"dir": str(out_dir), "rows": rows}


def run_experiment(name: str, overrides: Sequence[str] = (), resume: bool = False) -> dict:
    """Run experiment ``name`` ("paper", a sweep config or any config); returns its table rows."""
    if name == "paper":
        return run_paper(overrides, resume)
    spec = load_experiment(name, overrides)
    if spec.variants:
        return run_variants(spec, resume)
    if spec.sweep_key:
        return run_sweep(spec, resume)
    return run_single(spec, resume)


if __name__ == "__main__":  # python -m pyser.training.experiments NAME [--set ...] [--resume]
    from pyser.training.cli import main

    sys.exit(main("experiment"))

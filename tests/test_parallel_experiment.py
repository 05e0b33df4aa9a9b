"""scripts/parallel_experiment.py: an experiment's fold runs as parallel worker processes,
then ``--resume`` assembles the same tables without training again."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyser.training.experiments import run_experiment
from test_train import make_corpus, write_tiny_experiment

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "parallel_experiment.py"


@pytest.mark.slow
def test_workers_run_every_fold_and_resume_only_assembles(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_per=3)
    config = write_tiny_experiment(tmp_path, "tiny_ablation", manifest, """seeds = [0, 1]

[variants.plain]
center_lambda = 0.0

[variants.center]
""")
    done = subprocess.run([sys.executable, str(SCRIPT), str(config), "--workers", "3"],
                          check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "6 items" in done.stdout and "failed items: []" in done.stdout
    runs = tmp_path / "runs" / "tiny_ablation"
    for variant in ("plain", "center"):
        folds = sorted(p.parent.name for p in (runs / variant / "folds").glob("*/result.json"))
        assert folds == [f"r{r}_f{f}" for r in (0, 1) for f in range(3)]
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/folds/*/result.json")}
    out = run_experiment(str(config), resume=True)
    assert [row["summary"]["ua"]["n"] for row in out["rows"]] == [6, 6]
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/folds/*/result.json")} == stamps
    log = [json.loads(line) for line in (runs / "plain" / "log.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "fold_skip" for e in log) == 6

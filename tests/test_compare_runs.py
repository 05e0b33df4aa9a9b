"""Paired comparison of two runs by fold: metrics.paired_difference,
results.fold_results / paired_fold_scores and scripts/compare_runs.py."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pyser.training.experiments import run_experiment
from pyser.training.metrics import paired_difference
from pyser.training.results import fold_results, paired_fold_scores
from test_train import make_corpus, write_tiny_experiment

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_runs.py"


def test_paired_difference_is_of_the_second_minus_the_first():
    d = paired_difference([0.5, 0.6, 0.7], [0.6, 0.6, 0.9])
    assert d["n"] == 3 and d["better"] == 2  # the tie (0.6, 0.6) is not better
    assert d["mean"] == pytest.approx(0.1)
    assert d["std"] == pytest.approx(np.std([0.1, 0.0, 0.2], ddof=1))
    assert paired_difference([0.5], [0.4]) == {"mean": pytest.approx(-0.1), "std": 0.0,
                                               "n": 1, "better": 0}
    for a, b in (([], []), ([0.5, 0.6], [0.5])):
        with pytest.raises(ValueError, match="equally long"):
            paired_difference(a, b)


def write_result(run: Path, repeat: int, fold: int, split_seed: int, last: float,
                 best: float, test_size: int = 10) -> None:
    folder = run / "folds" / f"r{repeat}_f{fold}"
    folder.mkdir(parents=True)
    doc = {"repeat": repeat, "fold": fold, "split_seed": split_seed, "split": "speaker",
           "sizes": {"train": 30, "dev": 10, "test": test_size},
           "class_counts": {"test": [test_size // 2, test_size - test_size // 2]},
           "test": {"ua": best, "wa": best}, "test_last": {"ua": last, "wa": last}}
    (folder / "result.json").write_text(json.dumps(doc))


def test_runs_pair_by_split_seed_and_fold_not_by_repeat(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for fold, last in enumerate((0.60, 0.70, 0.80)):  # seeds=[0, 1]: seed 1 is repeat 1
        write_result(a, 0, fold, 0, 0.1, 0.1)
        write_result(a, 1, fold, 1, last, last - 0.05)
    for fold, last in ((0, 0.65), (1, 0.68), (2, 0.91)):  # seeds=[1]: repeat 0
        write_result(b, 0, fold, 1, last, last)
    ra, rb = fold_results(a), fold_results(b)
    assert sorted(ra) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    keys, sa, sb = paired_fold_scores(ra, rb, "test_last")
    assert keys == [(1, 0), (1, 1), (1, 2)]
    assert sa == [0.60, 0.70, 0.80] and sb == [0.65, 0.68, 0.91]
    assert paired_fold_scores(ra, rb, "test")[1] == pytest.approx([0.55, 0.65, 0.75])

    done = subprocess.run([sys.executable, str(SCRIPT), str(a), str(b), "--part", "test_last",
                           "--json", str(tmp_path / "c.json")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "| 1 | 2 | 80.0 | 91.0 | +11.0 |" in done.stdout
    assert "| mean ± std | | 70.0 ± 10.0 | 74.7 ± 14.2 | +4.7 ± 6.5 |" in done.stdout
    assert "B better in 2 of 3 fold runs." in done.stdout
    assert ("Only A finished split seed 0 fold 0, split seed 0 fold 1, split seed 0 fold 2: "
            "left out.") in done.stdout and "Only B" not in done.stdout
    doc = json.loads((tmp_path / "c.json").read_text())
    assert len(doc) == 1 and doc[0]["b_minus_a"]["better"] == 2
    assert doc[0]["b_minus_a"]["mean"] == pytest.approx((0.05 - 0.02 + 0.11) / 3)


def test_runs_that_did_not_test_the_same_speakers_are_refused(tmp_path):
    a, b, c, empty = (tmp_path / n for n in ("a", "b", "c", "empty"))
    write_result(a, 0, 0, 1, 0.6, 0.6)
    write_result(b, 0, 0, 1, 0.7, 0.7, test_size=12)  # same seed and fold, other speakers
    write_result(c, 0, 0, 2, 0.7, 0.7)  # another split seed: nothing shared
    empty.mkdir()
    ra = fold_results(a)
    with pytest.raises(ValueError, match="sizes, class_counts differ"):
        paired_fold_scores(ra, fold_results(b))
    with pytest.raises(ValueError, match="share no"):
        paired_fold_scores(ra, fold_results(c))
    with pytest.raises(ValueError, match="no 'test_last_unadapted' scores; parts there: "
                                         r"\['test', 'test_last'\]"):
        paired_fold_scores(ra, ra, "test_last_unadapted")
    with pytest.raises(FileNotFoundError, match="no finished fold run"):
        fold_results(empty)
    write_result(a, 1, 0, 1, 0.6, 0.6)  # the same split seed and fold twice in one run
    with pytest.raises(ValueError, match="two fold runs of split seed 1, fold 0"):
        fold_results(a)
    done = subprocess.run([sys.executable, str(SCRIPT), str(b), str(c)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("compare_runs.py: error: the runs share no")
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_real_runs_of_two_sweep_points_pair_up(tmp_path):
    """The fields the pairing reads are those a training run writes."""
    manifest = make_corpus(tmp_path / "corpus", n_per=3)
    config = write_tiny_experiment(tmp_path, "tiny_pair", manifest, """
seeds = [0, 1]

[sweep]
key = "center_lambda"
values = [0.0, 0.3]
""")
    run_experiment(str(config))
    runs = tmp_path / "runs" / "tiny_pair"
    a, b = fold_results(runs / "center_lambda=0.0"), fold_results(runs / "center_lambda=0.3")
    assert sorted(a) == sorted(b) == [(s, f) for s in (0, 1) for f in range(3)]
    keys, sa, sb = paired_fold_scores(a, b, "test_last")
    assert sa == [a[k]["test_last"]["ua"] for k in keys]
    assert sb == [b[k]["test_last"]["ua"] for k in keys]
    done = subprocess.run([sys.executable, str(SCRIPT), str(runs / "center_lambda=0.0"),
                           str(runs / "center_lambda=0.3")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("fold runs.") == 2  # best-dev and last-step tables
    assert "best-dev weights" in done.stdout and "last-step weights" in done.stdout

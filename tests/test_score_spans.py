"""scripts/score_spans.py: a finished run's last-step weights scored on crops, whole files
and speech spans, after checking that it reproduces the run's own last-step scores."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyser.training.experiments import run_experiment
from test_train import make_corpus, write_tiny_experiment

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "score_spans.py"
STUDY = Path(__file__).resolve().parents[1] / "scripts" / "logit_prior_study.py"
RESCORE = Path(__file__).resolve().parents[1] / "scripts" / "rescore_last.py"


@pytest.mark.slow
def test_views_are_scored_and_a_run_it_cannot_reproduce_is_refused(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_per=3, syllables=True)
    config = write_tiny_experiment(tmp_path, "tiny_spans", manifest, """
keep_weights_every = 2

[variants.adapt]
speaker_adapt = true
""")
    run_experiment(str(config))
    command = [sys.executable, str(SCRIPT), str(config), "--variant", "adapt",
               "--views", "crop,whole,speech,speech+0.5", "--json", str(tmp_path / "s.json")]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    folds = [json.loads(line.split(" ", 1)[1]) for line in lines if "/folds/r0_f" in line]
    assert len(folds) == 3
    for row in folds:
        assert set(row) == {f"{v} {h}" for v in ("crop", "whole", "speech", "speech+0.5")
                            for h in ("alone", "streamed", "streamed+out")}
        assert all(0.0 <= ua <= 1.0 for ua in row.values())
    header = next(line for line in lines if line.startswith("| scored on | crop alone"))
    assert header.count("|") == 14 and any(line.startswith("| test | ") for line in lines)
    assert any(line.startswith("| speech+0.5 streamed | ") for line in lines)  # per corpus
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["ua"]["speech+0.5 streamed"]["n"] == 3 and doc["part"] == "test"
    assert doc["weights"] == "last-step" and doc["command"].endswith("--weights last")
    mean = sum(r["speech+0.5 streamed"] for r in folds) / 3
    assert doc["ua"]["speech+0.5 streamed"]["mean"] == pytest.approx(mean, abs=1e-4)
    assert set(doc["ua_by_corpus"]["crop alone"]) == {"csv"}
    # the weights kept after step 4 (the last) score as the last step's; step 3 was not kept
    kept = subprocess.run(command + ["--weights", "step:4"], check=False, capture_output=True,
                          text=True, timeout=600)
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert [line.split(" ", 1)[1] for line in kept.stdout.splitlines() if "/folds/r0_f" in line] \
        == [line.split(" ", 1)[1] for line in lines if "/folds/r0_f" in line]
    assert "step-4 test UA %" in kept.stdout
    missing = subprocess.run(command + ["--weights", "step:3"], check=False, capture_output=True,
                             text=True, timeout=600)
    assert missing.returncode != 0 and "weights_3.pt does not exist" in missing.stderr
    assert "kept the weights of steps [2, 4]" in missing.stderr
    assert "Traceback" not in missing.stderr
    # the output-normalisation prior study reads the same run
    study = subprocess.run([sys.executable, str(STUDY), str(config), "--variant", "adapt",
                            "--part", "test", "--priors", "2,8", "--history", "2"],
                           check=False, capture_output=True, text=True, timeout=600)
    assert study.returncode == 0, study.stderr[-2000:]
    table = [line for line in study.stdout.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in table[1:]] == [
        "| no history", "| feature adaptation only",
        "| + output normalisation, prior 2", "| + output normalisation, prior 8"]
    cells = [c for line in table[2:] for c in line.strip("| ").split(" | ")[1:]]
    assert len(cells) == 6 and all(0 <= float(c.split(" ± ")[0]) <= 100 for c in cells)
    # rescore_last.py re-scores the same last-step weights, checking them against result.json
    rescore = subprocess.run([sys.executable, str(RESCORE), str(config), "--variant", "adapt"],
                             check=False, capture_output=True, text=True, timeout=600)
    assert rescore.returncode == 0, rescore.stderr[-2000:]
    assert sum("/folds/r0_f" in line for line in rescore.stdout.splitlines()) == 3
    # a stored score the weights do not give back: refused, nothing printed as a result
    result = tmp_path / "runs" / "tiny_spans" / "adapt" / "folds" / "r0_f1" / "result.json"
    doc = json.loads(result.read_text())
    doc["test_last"]["ua"] += 0.01
    result.write_text(json.dumps(doc))
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "not the weights or data it had" in done.stderr
    assert "| test | " not in done.stdout


ENSEMBLE = Path(__file__).resolve().parents[1] / "scripts" / "fold_ensemble.py"


@pytest.mark.slow
def test_fold_ensemble_scores_every_set_of_seeds_models_and_needs_two_seeds(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_per=3, syllables=True)
    config = write_tiny_experiment(tmp_path, "tiny_ensemble", manifest, """
seeds = [0, 1]

[variants.adapt]
speaker_adapt = true
""")
    run_experiment(str(config))
    done = subprocess.run([sys.executable, str(ENSEMBLE), str(config), "--variant", "adapt"],
                          check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    runs = [line for line in lines if "/folds/r" in line]
    assert len(runs) == 6 and {line.split("/folds/")[1][:2] for line in runs} == {"r0", "r1"}
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == "| models | pooled | csv |"
    one, two = (line.strip("| ").split(" | ") for line in table[1:])
    assert one[0] == "1" and " ± " in one[1] and two[0] == "2" and " ± " not in two[1]
    assert all(0 <= float(c.split(" ± ")[0]) <= 100 for c in one[1:] + two[1:])
    assert one[1] == one[2] and two[1] == two[2]  # one corpus: it is the pool
    single = subprocess.run([sys.executable, str(ENSEMBLE), str(config), "--variant", "adapt",
                             "--set", "seeds=[0]"],
                            check=False, capture_output=True, text=True, timeout=600)
    assert single.returncode != 0 and "at least two split seeds" in single.stderr


@pytest.mark.slow
def test_fold_ensemble_scores_members_of_one_split_alone_and_averaged(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_per=3, syllables=True)
    config = write_tiny_experiment(tmp_path, "tiny_members", manifest, """
seeds = [0]
speaker_adapt = true

[variants.a]

[variants.b]
seed = 1
""")
    run_experiment(str(config))

    def ensemble(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ENSEMBLE), *args], check=False,
                              capture_output=True, text=True, timeout=600)

    a, b = f"{config}:a", f"{config}:b"
    done = ensemble("--member", a, "--member", b, "--weights", "best", "--part", "dev")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dev UA %, best weights" in done.stdout
    rows = [line.strip("| ").split(" | ") for line in done.stdout.splitlines()
            if line.startswith("| tiny_members")]
    assert [r[0] for r in rows] == ["tiny_members/a", "tiny_members/b",
                                    "tiny_members/a + tiny_members/b"]
    assert all(0 <= float(c) <= 100 for r in rows for c in r[1:3])
    # a model averaged with itself serves what it serves alone
    alone = ensemble("--member", a, "--member", a)
    assert alone.returncode == 0, alone.stderr[-2000:]
    table = [line.strip("| ").split(" | ") for line in alone.stdout.splitlines()
             if line.startswith("| tiny_members")]
    assert [r[0] for r in table] == ["tiny_members/a", "tiny_members/a",
                                     "tiny_members/a + tiny_members/a"]
    assert table[0][1:3] == table[2][1:3] and len(table[0][3].split()) == 3  # 3 folds' UA

    wrong = ensemble("--member", a, "--member", b, "--set", "seeds=[0,1]")
    assert wrong.returncode != 0 and "one split seed" in wrong.stderr
    other = write_tiny_experiment(tmp_path, "tiny_other", manifest, "seeds = [1]\n")
    split = ensemble("--member", a, "--member", str(other))
    assert split.returncode != 0 and "not the same split" in split.stderr
    assert ensemble("--member", a).returncode != 0

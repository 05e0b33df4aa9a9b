"""Knowledge distillation (pyser.training.distill): teachers checked against the student's
fold, their averaged tempered posteriors, a distilled run that differs from a plain one and
resumes exactly, and parallel_experiment.py holding a student back until its teachers end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pyser.training.config import ConfigError
from pyser.training.distill import Teachers, teacher_paths, teachers_ready
from pyser.training.evaluate import load_eager_model
from test_train import make_corpus, tiny_config, write_tiny_experiment

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "parallel_experiment.py"
TEACHER = ["teacher/folds/r{repeat}_f{fold}/model.pt"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"), n_per=3)


@pytest.fixture(scope="module")
def teacher(corpus, tmp_path_factory) -> Path:
    """out_dir holding teacher/folds/r0_f0 (fold 0) and r0_f1 (fold 1), 8 steps each."""
    from pyser.training.train import run

    out = tmp_path_factory.mktemp("runs")
    run(tiny_config(corpus, out, experiment="teacher", folds=[0, 1], steps=8,
                    eval_every=4, best_after_step=0, save_embeddings=False))
    return out


def test_teacher_paths_fill_the_fold_and_lie_under_out_dir(tmp_path):
    fold = SimpleNamespace(repeat=1, fold=3)
    got = teacher_paths(["a/r{repeat}_f{fold}/model.pt", "/abs/f{fold}.pt"], tmp_path, fold)
    assert got == [tmp_path / "a" / "r1_f3" / "model.pt", Path("/abs/f3.pt")]
    with pytest.raises(ValueError, match=r"only \{repeat\} and \{fold\}"):
        teacher_paths(["a/{seed}/model.pt"], tmp_path, fold)


def test_a_teacher_is_ready_only_once_its_fold_run_has_finished(tmp_path):
    model = tmp_path / "r0_f0" / "model.pt"
    assert not teachers_ready([model])
    model.parent.mkdir()
    model.write_bytes(b"x")
    assert not teachers_ready([model])  # written before result.json: the run may be writing
    (model.parent / "result.json").write_text("{}")
    assert teachers_ready([model])
    other = tmp_path / "teacher.pt"  # a model file outside a fold folder: ready once it exists
    assert not teachers_ready([model, other])
    other.write_bytes(b"x")
    assert teachers_ready([model, other])


def test_the_teachers_average_their_tempered_posteriors(teacher):
    paths = [teacher / "teacher" / "folds" / f"r0_f{k}" / "model.pt" for k in (0, 1)]
    nets = [load_eager_model(p)[0] for p in paths]
    torch.manual_seed(0)
    x, lengths = torch.randn(3, 80, 64), torch.tensor([80, 60, 40])
    got = Teachers(nets, temperature=2.0).probs(x, lengths)
    with torch.no_grad():
        want = sum(torch.softmax(n(x, lengths) / 2.0, dim=1) for n in nets) / 2
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.sum(dim=1), torch.ones(3))
    assert not any(p.requires_grad for n in nets for p in n.parameters())
    with pytest.raises(ValueError, match="at least one teacher"):
        Teachers([], 2.0)


def test_a_distilled_run_learns_other_weights_and_resumes_exactly(corpus, teacher):
    from pyser.model import load_model
    from pyser.training.train import run

    cfg = {"experiment": "student", "steps": 12, "eval_every": 6, "best_after_step": 0,
           "save_embeddings": False, "distill_teachers": TEACHER, "distill_weight": 0.7}
    full = run(tiny_config(corpus, teacher, **cfg))
    plain = run(tiny_config(corpus, teacher, **{**cfg, "experiment": "plain",
                                                "distill_teachers": []}))
    a = torch.load(Path(full["dir"]) / "folds" / "r0_f0" / "final_state.pt")
    b = torch.load(Path(plain["dir"]) / "folds" / "r0_f0" / "final_state.pt")
    assert not torch.equal(a["fc2.weight"], b["fc2.weight"])  # the loss read the teacher

    _, meta = load_model(Path(full["dir"]) / "folds" / "r0_f0" / "model.pt")
    assert meta.provenance["distill"] == {
        "teachers": [str(teacher / "teacher" / "folds" / "r0_f0" / "model.pt")],
        "weight": 0.7, "temperature": 2.0}

    again = {**cfg, "experiment": "interrupted"}
    assert run(tiny_config(corpus, teacher, stop_at_step=5, **again))["status"] == "stopped"
    assert run(tiny_config(corpus, teacher, **again), resume=True)["status"] == "done"
    c = torch.load(teacher / "interrupted" / "folds" / "r0_f0" / "final_state.pt")
    for k in a:
        assert torch.equal(a[k], c[k]), k
    again["experiment"] = "changed"
    assert run(tiny_config(corpus, teacher, stop_at_step=5, **again))["status"] == "stopped"
    with pytest.raises(RuntimeError, match="different distill_weight"):
        run(tiny_config(corpus, teacher, **{**again, "distill_weight": 0.5}), resume=True)


def test_a_teacher_of_another_fold_or_none_at_all_is_refused(corpus, teacher):
    from pyser.training.train import run

    cfg = {"steps": 4, "save_embeddings": False}
    # fold 1's teacher heard fold 0's test speakers
    wrong = run_raises(corpus, teacher, ValueError, experiment="wrong_fold",
                       distill_teachers=["teacher/folds/r0_f1/model.pt"], **cfg)
    assert "was not trained on this fold" in wrong and "fold=1 (run: 0)" in wrong
    missing = run_raises(corpus, teacher, FileNotFoundError, experiment="missing",
                         distill_teachers=["nobody/folds/r{repeat}_f{fold}/model.pt"], **cfg)
    assert "nobody" in missing
    # a teacher of other features
    other = teacher / "mel56"
    run(tiny_config(corpus, other, experiment="teacher", steps=4, save_embeddings=False,
                    features={"n_mels": 56}))
    feats = run_raises(corpus, teacher, ValueError, experiment="other_features",
                       distill_teachers=[str(other / TEACHER[0])], **cfg)
    assert "reads other features" in feats


def run_raises(corpus: Path, out: Path, error: type, **changes) -> str:
    from pyser.training.train import run

    with pytest.raises(error) as info:
        run(tiny_config(corpus, out, **changes))
    return str(info.value)


def test_distillation_settings_are_checked(corpus, tmp_path):
    for bad, match in (({"distill_weight": 0.0}, "distill_weight"),
                       ({"distill_weight": 1.5}, "distill_weight"),
                       ({"distill_temperature": 0.0}, "distill_temperature"),
                       ({"speaker_adapt": True, "speaker_adapt_logit_train": True},
                        "cannot be combined")):
        with pytest.raises(ConfigError, match=match):
            tiny_config(corpus, tmp_path, distill_teachers=TEACHER, **bad)
    tiny_config(corpus, tmp_path, distill_weight=0.0)  # unused without teachers


@pytest.mark.slow
def test_parallel_experiment_starts_a_student_only_after_its_teachers(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", n_per=3)
    # the student variant comes first: without the wait it would start before its teachers
    config = write_tiny_experiment(tmp_path, "tiny_distill", manifest, """
[variants.student]
distill_teachers = ["tiny_distill/teacher/folds/r{repeat}_f{fold}/model.pt"]

[variants.teacher]
seed = 1
""")
    done = subprocess.run([sys.executable, str(SCRIPT), str(config), "--workers", "3"],
                          check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "failed items: []" in done.stdout
    starts = {}
    for line in (tmp_path / "runs" / "tiny_distill" / v / "log.jsonl"
                 for v in ("student", "teacher")):
        for e in map(json.loads, line.read_text().splitlines()):
            if e["event"] in ("fold_start", "fold_end"):
                starts[(line.parent.name, e["event"], e["fold"])] = e["time"]
    for k in range(3):
        assert starts[("student", "fold_start", k)] >= starts[("teacher", "fold_end", k)]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_distilled_run_trains_on_cuda_in_bf16(corpus, teacher):
    from pyser.training.train import run

    out = run(tiny_config(corpus, teacher, experiment="student_cuda", device="cuda",
                          precision="bf16", steps=8, eval_every=4, best_after_step=0,
                          save_embeddings=False, distill_teachers=TEACHER))
    assert out["status"] == "done"
    (fold,) = out["folds"]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in fold["history"]["train"])

"""Auxiliary emotions (``aux_emotions``): the extra utterances, the unchanged folds, the
training pool, and a run that trains, resumes exactly and exports the task's model only.

The corpus is test_train's tone corpus with two more emotions ("fear" at 1200 Hz and
"disgust" at 2600 Hz), which the 4-class task excludes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from test_train import LABELS, make_corpus, tiny_config

EXTRA = {"fear": 1200.0, "disgust": 2600.0}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("aux_corpus"), n_per=4, syllables=True,
                       labels={**LABELS, **EXTRA})


def test_extras_follow_the_task_and_leave_the_folds_as_they_were(corpus, tmp_path):
    from pyser.training.data import prepare_data

    plain = prepare_data(tiny_config(corpus, tmp_path / "runs", folds=[]))
    data = prepare_data(tiny_config(corpus, tmp_path / "runs", folds=[], aux_emotions=True))
    n = len(plain.utts)
    assert n == 3 * 4 * 4 and len(data.utts) == 3 * 6 * 4  # 3 speakers, 4 per label
    assert data.utts[:n] == plain.utts and np.array_equal(data.y[:n], plain.y)
    assert (data.y[n:] == -1).all()
    assert {u.label for u in data.utts[n:]} == {"fearful", "disgust"}
    assert data.info["aux_emotions"] == {"angry": 0, "disgust": 12, "fearful": 12,
                                         "happy": 0, "neutral": 0, "sad": 0}
    assert data.info["n_utterances"] == n  # the task's figures are the task's
    aux = data.aux
    assert aux.n_task == n and aux.n_extra == 24
    assert [aux.labels[k] for k in aux.y[:n]] == [u.label for u in plain.utts]
    for a, b in zip(plain.folds, data.folds):  # the splits are the task's own
        for part in ("train", "dev", "test"):
            assert list(getattr(a, part)) == list(getattr(b, part))


def test_the_training_pool_adds_only_the_training_speakers_extras(corpus, tmp_path):
    from pyser.training.data import prepare_data

    data = prepare_data(tiny_config(corpus, tmp_path / "runs", aux_emotions=True))
    fold = data.folds[0]
    pool = data.aux.training_pool(np.asarray(fold.train))
    train_speakers = {data.utts[i].speaker for i in fold.train}
    held_out = {data.utts[i].speaker for i in [*fold.dev, *fold.test]}
    assert list(pool[: len(fold.train)]) == list(fold.train)
    extra = pool[len(fold.train):]
    assert len(extra) == 8 * len(train_speakers)  # 2 extra emotions x 4 per speaker
    assert all(i >= data.aux.n_task for i in extra)
    assert {data.utts[i].speaker for i in extra} == train_speakers
    assert not train_speakers & held_out


def test_a_run_with_auxiliary_emotions_trains_resumes_exactly_and_exports_the_task(
        corpus, tmp_path):
    from pyser.stream import Recognizer
    from pyser.training.checkpoint import load_checkpoint
    from pyser.training.train import run

    cfg = {"speaker_adapt": True, "steps": 16, "eval_every": 8, "best_after_step": 0}
    full = run(tiny_config(corpus, tmp_path / "full", aux_emotions=True, **cfg))
    plain = run(tiny_config(corpus, tmp_path / "plain", **cfg))
    fold = full["folds"][0]
    assert fold["aux_train"]["fearful"] == 4 and fold["aux_train"]["disgust"] == 4
    assert fold["sizes"] == plain["folds"][0]["sizes"]  # dev and test are the task's
    assert fold["class_counts"] == plain["folds"][0]["class_counts"]
    a = torch.load(Path(full["dir"]) / "folds" / "r0_f0" / "final_state.pt")
    b = torch.load(Path(plain["dir"]) / "folds" / "r0_f0" / "final_state.pt")
    assert set(a) == set(b)  # the same network: the head is not part of it
    assert not torch.equal(a["fc1.weight"], b["fc1.weight"])  # but it trained z
    rec = Recognizer.load(Path(full["dir"]) / "folds" / "r0_f0" / "model.pt")
    assert rec.labels == tuple(LABELS)

    out = tmp_path / "interrupted"
    run_cfg = tiny_config(corpus, out, aux_emotions=True, stop_at_step=9, **cfg)
    assert run(run_cfg)["status"] == "stopped"
    ckpt = load_checkpoint(out / "tiny" / "folds" / "r0_f0" / "checkpoint.pt")
    assert ckpt["aux_head"]["linear.weight"].shape == (6, 64)  # 6 emotions, z of 64
    assert run(tiny_config(corpus, out, aux_emotions=True, **cfg), resume=True)["status"] == "done"
    c = torch.load(out / "tiny" / "folds" / "r0_f0" / "final_state.pt")
    for k in a:
        assert torch.equal(a[k], c[k]), k
    out = tmp_path / "other"
    assert run(tiny_config(corpus, out, aux_emotions=True, stop_at_step=3, **cfg))["status"] == "stopped"
    with pytest.raises(RuntimeError, match="different aux_emotions"):
        run(tiny_config(corpus, out, **cfg), resume=True)


def test_a_batch_of_extras_only_trains_the_head_and_leaves_the_centers(corpus, tmp_path):
    from pyser.training.aux_emotions import AuxHead
    from pyser.training.data import prepare_data
    from pyser.training.losses import CenterLoss
    from pyser.training.runtime import Runtime
    from pyser.training.train import new_model, train_step, wrap_for_training

    data = prepare_data(tiny_config(corpus, tmp_path / "runs", aux_emotions=True))
    rt = Runtime(torch.device("cpu"))
    torch.manual_seed(0)
    model = new_model(data, np.arange(len(data.utts)), rt.device)
    centers = CenterLoss(len(data.labels), model.embedding_dim)
    centers.centers.data.normal_()
    before = centers.centers.clone()
    head = AuxHead(model.embedding_dim, len(data.aux.labels))
    w0 = head.linear.weight.detach().clone()
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-2)
    extras = np.arange(data.aux.n_task, data.aux.n_task + 6)
    loss, ce, cl = train_step(wrap_for_training(model, rt), centers, optimizer, data, extras,
                              None, 0.3, 0.5, rt, aux=(head, 0.5))
    assert np.isfinite(loss) and loss > 0 and ce == 0 and cl == 0
    assert torch.equal(centers.centers, before)
    assert not torch.equal(head.linear.weight, w0)


def test_aux_settings_are_checked(corpus, tmp_path):
    from pyser.training.baseline import run_baseline
    from pyser.training.config import ConfigError
    from pyser.training.data import prepare_data

    with pytest.raises(ConfigError, match="aux_weight must be > 0"):
        tiny_config(corpus, tmp_path, aux_emotions=True, aux_weight=0.0)
    with pytest.raises(ConfigError, match="aux_emotions cannot be combined"):
        tiny_config(corpus, tmp_path, aux_emotions=True, speaker_adapt=True,
                    speaker_adapt_logit_train=True)
    with pytest.raises(ConfigError, match="aux_emotions cannot be combined"):
        tiny_config(corpus, tmp_path, aux_emotions=True, distill_teachers=["t.pt"])
    cfg = tiny_config(corpus, tmp_path / "runs", aux_emotions=True)
    with pytest.raises(ValueError, match="baseline reads the task's utterances only"):
        run_baseline(cfg, data=prepare_data(cfg))

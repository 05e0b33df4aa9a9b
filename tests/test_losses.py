"""pyser.training.losses against hand-computed numbers (the forms documented in the module)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from pyser.training.losses import (
    CenterLoss,
    LossSchedule,
    center_loss,
    class_counts,
    class_weights,
    distillation_loss,
    joint_loss,
    weighted_cross_entropy,
)


def test_class_weights_on_known_counts():
    w = class_weights([10, 4, 0])
    # max(n) / (n_c + 0.5): 10/10.5, 10/4.5, 10/0.5
    torch.testing.assert_close(w, torch.tensor([10 / 10.5, 10 / 4.5, 20.0]), rtol=1e-6, atol=0)
    assert w.dtype == torch.float32


def test_class_counts_and_bad_labels():
    assert class_counts([0, 2, 2, 1, 2], 4).tolist() == [1, 1, 3, 0]
    with pytest.raises(ValueError, match="labels must lie"):
        class_counts([0, 4], 4)
    with pytest.raises(ValueError):
        class_weights([-1, 2])


def test_weighted_cross_entropy_is_weighted_mean():
    # CE_0 = -log(1/(1+3)) = ln 4 (target 0, logits [0, ln 3]); CE_1 = ln 2 (equal logits).
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    y = torch.tensor([0, 1])
    w = torch.tensor([1.0, 3.0])
    got = weighted_cross_entropy(logits, y, w)
    # TF1 Reduction.MEAN: sum(w_i CE_i) / sum(w_i) = (ln4 + 3 ln2) / 4 = 5 ln2 / 4
    assert got.item() == pytest.approx(5 * math.log(2) / 4, rel=1e-6)
    # not the batch mean of weighted losses ((ln4 + 3 ln2) / 2)
    assert got.item() != pytest.approx(5 * math.log(2) / 2, rel=1e-3)
    # uniform weights: the plain mean
    assert weighted_cross_entropy(logits, y).item() == pytest.approx(3 * math.log(2) / 2, rel=1e-6)


Z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
Y = torch.tensor([0, 0, 1])
C = torch.tensor([[1.0, 1.0], [0.0, 0.0], [5.0, 5.0]])


def test_center_loss_value():
    # squared distances: |(0,-1)|^2 = 1, |(2,-1)|^2 = 5, |(0,2)|^2 = 4
    w = torch.tensor([1.0, 2.0, 7.0])
    # example weights 1, 1, 2: (1 + 5 + 2*4) / 4 = 3.5  (no factor 1/2)
    assert center_loss(Z, Y, C, w).item() == pytest.approx(3.5, rel=1e-6)
    assert center_loss(Z, Y, C).item() == pytest.approx(10 / 3, rel=1e-6)
    cl = CenterLoss(3, 2)
    cl.centers.copy_(C)
    assert cl(Z, Y, w).item() == pytest.approx(3.5, rel=1e-6)


def test_weight_sum_override_splits_a_batch_exactly():
    # two shards with the global denominator add up to the full-batch loss
    w = torch.tensor([1.0, 2.0, 7.0])
    full = center_loss(Z, Y, C, w)
    total_w = w[Y].sum()
    parts = center_loss(Z[:2], Y[:2], C, w, total_w) + center_loss(Z[2:], Y[2:], C, w, total_w)
    torch.testing.assert_close(parts, full)
    logits = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    full_ce = weighted_cross_entropy(logits, Y, w)
    parts_ce = weighted_cross_entropy(logits[:1], Y[:1], w, total_w) + weighted_cross_entropy(
        logits[1:], Y[1:], w, total_w
    )
    torch.testing.assert_close(parts_ce, full_ce)


def test_center_update_hand_computed():
    cl = CenterLoss(3, 2)
    cl.centers.copy_(C)
    cl.update(Z, Y, alpha=0.5)
    # class 0: n=2, sum(c - z) = (0,1) + (-2,1) = (-2,2); /3 * 0.5 = (-1/3, 1/3) -> c0 = (4/3, 2/3)
    # class 1: n=1, (c - z) = (0,-2); /2 * 0.5 = (0,-0.5) -> c1 = (0, 0.5)
    # class 2: absent, unchanged
    expected = torch.tensor([[4 / 3, 2 / 3], [0.0, 0.5], [5.0, 5.0]])
    torch.testing.assert_close(cl.centers, expected, rtol=1e-6, atol=1e-7)


def test_center_update_matches_scatter_sub_reference():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(16, 4, generator=g)
    y = torch.randint(0, 3, (16,), generator=g)
    c0 = torch.randn(3, 4, generator=g)
    cl = CenterLoss(3, 4)
    cl.centers.copy_(c0)
    cl.update(z, y, alpha=0.7)
    # the authors' tf.scatter_sub: per example, c[y_i] -= alpha * (c[y_i] - z_i) / (1 + n_{y_i}),
    # all computed from the centers before the update
    ref = c0.clone()
    n = torch.bincount(y, minlength=3)
    for i in range(16):
        ref[y[i]] -= 0.7 * (c0[y[i]] - z[i]) / (1 + n[y[i]])
    torch.testing.assert_close(cl.centers, ref, rtol=1e-5, atol=1e-6)


def test_alpha_one_update_from_zero_is_shrunk_class_mean():
    cl = CenterLoss(2, 2)
    cl.update(Z, Y, alpha=1.0)
    # c_j = sum z / (1 + n_j): class 0 (4,0)/3, class 1 (0,2)/2
    torch.testing.assert_close(cl.centers, torch.tensor([[4 / 3, 0.0], [0.0, 1.0]]))


def test_warmup_schedule():
    s = LossSchedule(lambda_=0.3, alpha=0.5, warmup_steps=20)
    assert s.at(0) == (0.0, 1.0)
    assert s.at(19) == (0.0, 1.0)
    assert s.at(20) == (0.3, 0.5)
    assert s.at(5000) == (0.3, 0.5)
    assert LossSchedule(0.3, 0.5, 0).at(0) == (0.3, 0.5)


def test_gradient_flows_to_z_and_model_not_centers():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    head = torch.nn.Linear(2, 3)
    cl = CenterLoss(3, 2)
    cl.centers.copy_(C)
    assert list(cl.parameters()) == []
    assert not cl.centers.requires_grad
    x = torch.randn(3, 3)
    z = net(x)
    z.retain_grad()
    w = torch.tensor([1.0, 2.0, 7.0])
    lam = 0.3
    total, ce, cen = joint_loss(head(z), z, Y, cl, w, lam)
    torch.testing.assert_close(total, ce + lam * cen)
    total.backward()
    assert cl.centers.grad is None
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0
    # the center-loss part of dL/dz_i = lam * 2 w_i (z_i - c_{y_i}) / sum w
    z2 = z.detach().clone().requires_grad_(True)
    (lam * center_loss(z2, Y, C, w)).backward()
    wi = w[Y]
    expected = lam * 2 * wi[:, None] * (z.detach() - C[Y]) / wi.sum()
    torch.testing.assert_close(z2.grad, expected)
    before = cl.centers.clone()
    torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=0.1).step()
    assert torch.equal(cl.centers, before)


def _dist_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        g = torch.Generator().manual_seed(11)
        z = torch.randn(8, 4, generator=g)
        y = torch.tensor([0, 1, 1, 2, 0, 0, 2, 1])
        cl = CenterLoss(3, 4)
        cl.centers.copy_(torch.randn(3, 4, generator=g))
        cl.update(z[rank::world], y[rank::world], alpha=0.5)  # each rank: a shard of the batch
        if rank == 0:
            np.save(out_file, cl.centers.numpy())
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_distributed_update_equals_full_batch(tmp_path):
    out = tmp_path / "centers.npy"
    mp.spawn(_dist_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    g = torch.Generator().manual_seed(11)
    z = torch.randn(8, 4, generator=g)
    y = torch.tensor([0, 1, 1, 2, 0, 0, 2, 1])
    cl = CenterLoss(3, 4)
    cl.centers.copy_(torch.randn(3, 4, generator=g))
    cl.update(z, y, alpha=0.5)
    np.testing.assert_allclose(np.load(out), cl.centers.numpy(), rtol=1e-6, atol=1e-6)


def test_label_smoothing_is_cross_entropy_against_the_smoothed_target():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(10, 4, generator=g)
    y = torch.randint(0, 4, (10,), generator=g)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    s = 0.2
    target = torch.full((10, 4), s / 4)
    target[torch.arange(10), y] += 1 - s
    per = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1)
    want = (w[y] * per).sum() / w[y].sum()
    got = weighted_cross_entropy(logits, y, w, label_smoothing=s)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, weighted_cross_entropy(logits, y, w), atol=1e-3)


def test_distillation_loss_is_the_weighted_tempered_kl_times_t_squared():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]], dtype=torch.float64)
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    w = torch.tensor([1.0, 1.0, 3.0])
    t = 2.0
    q = np.exp(logits.numpy() / t)
    q /= q.sum(axis=1, keepdims=True)
    kl = (p.numpy() * np.log(p.numpy() / q)).sum(axis=1)
    want = t**2 * (1.0 * kl[0] + 3.0 * kl[1]) / 4.0
    assert distillation_loss(logits, p, y, t, w).item() == pytest.approx(want, rel=1e-12)
    # the student at the teachers' tempered posteriors: nothing to learn
    same = torch.softmax(logits / t, dim=1)
    assert distillation_loss(logits, same, y, t, w).item() == pytest.approx(0.0, abs=1e-12)
    # its gradient is the cross-entropy's with soft targets, T * w_i (q_i - p_i) / sum(w)
    x = logits.clone().requires_grad_(True)
    distillation_loss(x, p, y, t, w).backward()
    wi = w[y][:, None]
    torch.testing.assert_close(x.grad, t * wi * (torch.softmax(logits / t, 1) - p) / wi.sum())
    with pytest.raises(ValueError, match="shape"):
        distillation_loss(logits, p[:, :2], y, t, w)


def test_joint_loss_blends_cross_entropy_and_distillation():
    torch.manual_seed(0)
    logits, z = torch.randn(6, 4), torch.randn(6, 8)
    y = torch.tensor([0, 1, 2, 3, 1, 2])
    p = torch.softmax(torch.randn(6, 4), dim=1)
    w = class_weights([3, 4, 5, 2])
    centers = CenterLoss(4, 8)
    centers.centers.copy_(torch.randn(4, 8))
    total, ce, cl = joint_loss(logits, z, y, centers, w, 0.3, teacher_probs=p,
                               distill_weight=0.25, temperature=3.0)
    want_ce = (0.75 * weighted_cross_entropy(logits, y, w)
               + 0.25 * distillation_loss(logits, p, y, 3.0, w))
    torch.testing.assert_close(ce, want_ce)
    torch.testing.assert_close(cl, center_loss(z, y, centers.centers, w))
    torch.testing.assert_close(total, want_ce + 0.3 * cl)
    _, plain_ce, _ = joint_loss(logits, z, y, centers, w, 0.3)
    torch.testing.assert_close(plain_ce, weighted_cross_entropy(logits, y, w))

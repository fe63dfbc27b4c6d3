"""LARS against its paper's update rule as the VICReg / Barlow Twins code applies it, and the schedule.

[0] You, Gitman, Ginsburg 2017, https://arxiv.org/abs/1708.03888. For each parameter w not excluded:
    g <- g + wd * w;  q = eta ||w|| / ||g|| (1 if either norm is 0);  g <- q g;
    mu <- momentum * mu + g (mu starts at 0);  w <- w - lr * mu
Biases and norm parameters (the VICReg code's filters: ndim == 1) skip both the weight decay
and the adaptation: a plain momentum step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from covssl.config import OptimConfig
from covssl.train.optim import LARS, build_optimizer, warmup_cosine


def _reference_lars(weights, grads_per_step, lr, momentum, wd, eta, excluded):
    """The update rule in float64 numpy, written from the formula above (no torch)."""
    w = [np.array(x, dtype=np.float64) for x in weights]
    mu = [np.zeros_like(x) for x in w]
    for grads in grads_per_step:
        for i, g in enumerate(grads):
            g = np.array(g, dtype=np.float64)
            if not excluded[i]:
                g = g + wd * w[i]
                w_norm, g_norm = np.sqrt((w[i] ** 2).sum()), np.sqrt((g ** 2).sum())
                q = eta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
                g = q * g
            mu[i] = momentum * mu[i] + g
            w[i] = w[i] - lr * mu[i]
    return w


def _run_lars(weights, grads_per_step, lr, momentum, wd, eta, excluded):
    params = [nn.Parameter(torch.tensor(x, dtype=torch.float64)) for x in weights]
    groups = [
        {"params": [p for p, e in zip(params, excluded) if not e], "weight_decay": wd},
        {"params": [p for p, e in zip(params, excluded) if e], "weight_decay": 0.0, "lars_exclude": True},
    ]
    optimizer = LARS([g for g in groups if g["params"]], lr=lr, momentum=momentum, eta=eta)
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lars_follows_the_update_rule_over_several_steps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(5, 3)), rng.normal(size=(5,)), rng.normal(size=(4, 5))]
    excluded = [False, True, False]  # the 1-D parameter is a bias
    grads = [[rng.normal(size=w.shape) * 10 ** rng.uniform(-3, 1) for w in weights] for _ in range(5)]
    settings = dict(lr=0.3, momentum=0.9, wd=1e-4, eta=0.02, excluded=excluded)
    ours, reference = _run_lars(weights, grads, **settings), _reference_lars(weights, grads, **settings)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_an_excluded_parameter_takes_a_plain_momentum_step() -> None:
    w, g = np.array([3.0, -1.0]), np.array([0.5, 0.25])
    (ours,) = _run_lars([w], [[g], [g]], lr=0.1, momentum=0.9, wd=0.5, eta=0.02, excluded=[True])
    np.testing.assert_allclose(ours, w - 0.1 * g - 0.1 * (0.9 * g + g), rtol=1e-14)  # no decay, no trust ratio


def test_the_trust_ratio_is_one_when_a_norm_is_zero() -> None:
    zero_weight = np.zeros(3)
    g = np.array([1.0, 2.0, 2.0])
    (ours,) = _run_lars([zero_weight], [[g]], lr=0.5, momentum=0.9, wd=1e-4, eta=0.02, excluded=[False])
    np.testing.assert_allclose(ours, -0.5 * g)  # ||w|| = 0: the raw gradient step
    w = np.array([1.0, 1.0])
    (unchanged,) = _run_lars([w], [[np.zeros(2)]], lr=0.5, momentum=0.9, wd=0.0, eta=0.02, excluded=[False])
    np.testing.assert_allclose(unchanged, w)  # ||g|| = 0 and no decay: nothing moves, no NaN


def test_the_step_size_is_eta_lr_times_the_weight_norm() -> None:
    # one step from rest: ||delta w|| = lr * eta * ||w||, whatever the gradient's scale
    rng = np.random.default_rng(3)
    w = rng.normal(size=(8, 8))
    for scale in (1e-6, 1.0, 1e6):
        (after,) = _run_lars([w], [[rng.normal(size=w.shape) * scale]], lr=0.2, momentum=0.9, wd=0.0, eta=0.02,
                             excluded=[False])
        assert np.linalg.norm(after - w) == pytest.approx(0.2 * 0.02 * np.linalg.norm(w), rel=1e-10)


def test_build_optimizer_excludes_biases_and_norms_from_lars_and_decay() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    optimizer = build_optimizer(model, OptimConfig(optimizer="lars", weight_decay=1e-4), peak_lr=0.3)
    by_exclusion = {g["lars_exclude"]: g for g in optimizer.param_groups}
    assert {p.ndim for p in by_exclusion[True]["params"]} == {1} and by_exclusion[True]["weight_decay"] == 0.0
    assert {p.ndim for p in by_exclusion[False]["params"]} == {2} and by_exclusion[False]["weight_decay"] == 1e-4
    assert isinstance(optimizer, LARS)


def test_warmup_then_cosine_reaches_its_final_value() -> None:
    lrs = [warmup_cosine(s, 100, 10, 2.0, final_ratio=0.1) for s in range(101)]
    assert lrs[9] == pytest.approx(2.0) and max(lrs) == pytest.approx(2.0)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(0.2) and math.isclose(lrs[55], 0.2 + 1.8 * 0.5, rel_tol=1e-12)

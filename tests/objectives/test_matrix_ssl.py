"""Tests of covssl/objectives/matrix_ssl.py against independent float64 references."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.matrix_ssl import matrix_ssl_loss

# The package may re-export functions named like their modules, so get the module itself this way.
matrix_ssl_module = importlib.import_module("covssl.objectives.matrix_ssl")

# (batch, dim) on both sides of B = d, so "auto" takes each path.
SHAPES = [(3, 10), (8, 32), (16, 6), (7, 7), (40, 12)]
PARAMS = [(0.5, 0.5, 4, 1.0), (1.0, 1.0, 4, 1.0), (0.3, 0.8, 1, 0.0), (0.7, 0.2, 7, 2.5)]


def _views(batch: int, dim: int, seed: int, noise: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=gen, dtype=torch.float64) * 3 + 0.1
    z1 = torch.randn(batch, dim, generator=gen, dtype=torch.float64) * scales + 0.3
    z2 = 0.7 * z1 + noise * torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return z1, z2


def _mce(p: np.ndarray, z: np.ndarray, lambd: float, mu: float, order: int, correlation: bool) -> float:
    """One official mce_loss_func(p, z) call, written from its formula with an explicit J_m."""
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    m, n = z.shape
    j_m = np.eye(m) - np.ones((m, m)) / m
    if correlation:
        big_p = lambd * np.eye(n)
        big_q = p.T @ j_m @ z / m + mu * np.eye(n)
    else:
        big_p = p.T @ j_m @ p / m + mu * np.eye(n)
        big_q = z.T @ j_m @ z / m + mu * np.eye(n)
    w = big_q - np.eye(n)
    log_q = sum((-1) ** (k + 1) * np.linalg.matrix_power(w, k) / k for k in range(1, order + 1))
    return float(np.trace(-big_p @ log_q))


def _official(z1: np.ndarray, z2: np.ndarray, lambd: float, mu: float, order: int, gamma: float) -> tuple[float, ...]:
    """(loss, uniformity, alignment): the official four-call combination with p = z (no teacher)."""
    corr = _mce(z2, z1, lambd, mu, order, True) + _mce(z1, z2, lambd, mu, order, True)
    unif = _mce(z2, z1, lambd, mu, order, False) + _mce(z1, z2, lambd, mu, order, False)
    return 0.5 * (corr + gamma * unif), 0.5 * corr, 0.5 * unif


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


def _loss_and_grads(z1: torch.Tensor, z2: torch.Tensor, **kwargs: object) -> tuple[torch.Tensor, tuple]:
    leaves = (z1.clone().requires_grad_(True), z2.clone().requires_grad_(True))
    loss = matrix_ssl_loss(*leaves, **kwargs)["loss"]
    return loss.detach(), torch.autograd.grad(loss, leaves)


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize(("lambd", "mu", "order", "gamma"), PARAMS)
def test_matches_the_official_formula(batch: int, dim: int, lambd: float, mu: float, order: int, gamma: float) -> None:
    z1, z2 = _views(batch, dim, seed=batch * 10 + dim)
    loss, uniformity, alignment = _official(z1.numpy(), z2.numpy(), lambd, mu, order, gamma)
    for path in ("auto", "feature", "sample"):
        out = matrix_ssl_loss(z1, z2, lambd=lambd, mu=mu, order=order, gamma=gamma, path=path)
        assert out["uniformity"].item() == pytest.approx(uniformity, rel=1e-10, abs=1e-12)
        assert out["alignment"].item() == pytest.approx(alignment, rel=1e-10, abs=1e-12)
        assert out["loss"].item() == pytest.approx(loss, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_one_sided_alignment_is_one_official_call(batch: int, dim: int) -> None:
    # official: mce(p, z, correlation=True) + gamma * mce(p, z, correlation=False), p the target
    z1, z2 = _views(batch, dim, seed=2)
    a, b = z1.numpy(), z2.numpy()
    expected = _mce(a, b, 0.5, 0.5, 4, True) + 2.0 * _mce(a, b, 0.5, 0.5, 4, False)
    for path in ("feature", "sample"):
        out = matrix_ssl_loss(z1, z2, gamma=2.0, symmetric=False, path=path)
        assert out["loss"].item() == pytest.approx(expected, rel=1e-10)
        assert out["alignment"].item() == pytest.approx(_mce(a, b, 0.5, 0.5, 4, False), rel=1e-10)


def test_a_high_order_series_is_the_true_matrix_log() -> None:
    # With mu = 0.5 every |eigenvalue(Q) - 1| <= 1/2, so order 60 is exact to ~1e-19.
    z1, z2 = _views(12, 5, seed=3)
    n1, n2 = (z / np.linalg.norm(z, axis=1, keepdims=True) for z in (z1.numpy(), z2.numpy()))
    x1, x2 = n1 - n1.mean(axis=0), n2 - n2.mean(axis=0)
    eye = np.eye(5)
    _, logdet_cross = np.linalg.slogdet(x1.T @ x2 / 12 + 0.5 * eye)  # tr log Q = log det Q

    def cross_entropy(p_cov: np.ndarray, z_cov: np.ndarray) -> float:
        values, vectors = np.linalg.eigh(z_cov + 0.5 * eye)
        return float(-np.trace((p_cov + 0.5 * eye) @ vectors @ np.diag(np.log(values)) @ vectors.T))

    c11, c22 = x1.T @ x1 / 12, x2.T @ x2 / 12
    out = matrix_ssl_loss(z1, z2, order=60)
    assert out["uniformity"].item() == pytest.approx(-0.5 * logdet_cross, rel=1e-12)
    expected = 0.5 * (cross_entropy(c22, c11) + cross_entropy(c11, c22))
    assert out["alignment"].item() == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- paths and gradients


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("symmetric", [True, False])
def test_paths_agree_in_value_and_gradient(batch: int, dim: int, symmetric: bool) -> None:
    z1, z2 = _views(batch, dim, seed=4)
    kwargs = {"lambd": 0.7, "mu": 0.3, "order": 5, "gamma": 1.5, "symmetric": symmetric}
    loss_f, grads_f = _loss_and_grads(z1, z2, path="feature", **kwargs)
    loss_s, grads_s = _loss_and_grads(z1, z2, path="sample", **kwargs)
    assert _rel_err(loss_s, loss_f) < 1e-8
    for gs, gf in zip(grads_s, grads_f):
        assert _rel_err(gs, gf) < 1e-8


@pytest.mark.parametrize("path", ["feature", "sample"])
def test_gradcheck(path: str) -> None:
    z1, z2 = _views(5, 4, seed=5)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    fn = lambda x, y: matrix_ssl_loss(x, y, lambd=0.6, mu=0.4, order=5, gamma=1.3, path=path)["loss"]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (z1, z2))


@pytest.mark.parametrize("symmetric", [True, False])
def test_gradients_reach_both_inputs(symmetric: bool) -> None:
    _, (g1, g2) = _loss_and_grads(*_views(16, 8, seed=6), symmetric=symmetric)
    assert g1.abs().sum() > 1e-3 and g2.abs().sum() > 1e-3
    # each term separately reaches both inputs too
    for key in ("uniformity", "alignment"):
        leaves = [v.clone().requires_grad_(True) for v in _views(16, 8, seed=6)]
        grads = torch.autograd.grad(matrix_ssl_loss(*leaves)[key], leaves)
        assert all(g.abs().sum() > 1e-3 for g in grads)


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 10), dim=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_view_swap_batch_permutation_and_row_scale_invariance(batch: int, dim: int, seed: int) -> None:
    z1, z2 = _views(batch, dim, seed)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(batch, generator=gen)
    row_scale = torch.rand(batch, 1, generator=gen, dtype=torch.float64) * 5 + 0.1
    base = matrix_ssl_loss(z1, z2)
    for other in (
        matrix_ssl_loss(z2, z1),
        matrix_ssl_loss(z1[perm], z2[perm]),
        matrix_ssl_loss(z1 * row_scale, z2),  # rows are l2-normalized
    ):
        for key in base:
            assert other[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("batch", "dim"), [(256, 8), (16, 64)])
def test_collapsed_inputs_have_a_worse_uniformity_than_spread_ones(batch: int, dim: int) -> None:
    gen = torch.Generator().manual_seed(batch)
    spread = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    u = torch.randn(1, dim, generator=gen, dtype=torch.float64)
    signs = torch.randint(0, 2, (batch, 1), generator=gen).double() * 2 - 1
    rank_one = signs * u  # +-u: dimensional collapse after the l2 normalization
    constant = u.expand(batch, dim)  # complete collapse: C = 0
    good = matrix_ssl_loss(spread, spread)["uniformity"]
    worse = matrix_ssl_loss(rank_one, rank_one)["uniformity"]
    worst = matrix_ssl_loss(constant, constant)["uniformity"]
    assert good < worse < worst
    # the constant batch sits at -lambd d log_T(mu), log_T(0.5) = -(1/2 + 1/8 + 1/24 + 1/64)
    assert worst.item() == pytest.approx(0.5 * dim * (0.5 + 0.125 + 1 / 24 + 1 / 64), rel=1e-12)


def test_zero_rows_give_finite_values_and_gradients() -> None:
    z1, z2 = torch.zeros(4, 6, dtype=torch.float64), _views(4, 6, seed=7)[1]
    loss, grads = _loss_and_grads(z1, z2)
    assert torch.isfinite(loss)
    assert all(torch.isfinite(g).all() for g in grads)


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z1, z2 = (v.float() for v in _views(8, 32, seed=8))
    reference = matrix_ssl_loss(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = matrix_ssl_loss(z1, z2)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in matrix_ssl_loss(z1.half(), z2.half()).values())
    assert matrix_ssl_loss(z1.double(), z2.double())["loss"].dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"z1": torch.ones(4)}, "z1"),
        ({"z2": torch.ones(2, 3, 4)}, "z2"),
        ({"z2": torch.ones(4, 7)}, "z2"),
        ({"z1": torch.ones(1, 6), "z2": torch.ones(1, 6)}, "z1"),
        ({"z1": torch.full((4, 6), float("nan"))}, "z1"),
        ({"z2": torch.full((4, 6), float("-inf"))}, "z2"),
        ({"z2": torch.ones(4, 6, dtype=torch.int32)}, "z2"),
        ({"lambd": -0.5}, "lambd"),
        ({"lambd": "0.5"}, "lambd"),
        ({"mu": 0.0}, "mu"),
        ({"mu": float("nan")}, "mu"),
        ({"order": 0}, "order"),
        ({"order": 4.0}, "order"),
        ({"order": True}, "order"),
        ({"gamma": -1.0}, "gamma"),
        ({"gamma": None}, "gamma"),
        ({"symmetric": "yes"}, "symmetric"),
        ({"path": "gram"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"z1": torch.randn(4, 6), "z2": torch.randn(4, 6)} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        matrix_ssl_loss(**args)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(matrix_ssl_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

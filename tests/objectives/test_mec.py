"""Tests of covssl/objectives/mec.py against independent float64 references."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.mec import mec_loss, taylor_trace_log

# The package may re-export functions named like their modules, so get the module itself this way.
mec_module = importlib.import_module("covssl.objectives.mec")

# (batch, dim) on both sides of B = d, so "auto" takes each path.
SHAPES = [(3, 10), (8, 32), (16, 6), (7, 7), (40, 12)]


def _views(batch: int, dim: int, seed: int, noise: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=gen, dtype=torch.float64) * 3 + 0.1
    z1 = torch.randn(batch, dim, generator=gen, dtype=torch.float64) * scales + 0.3
    z2 = 0.7 * z1 + noise * torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return z1, z2


def _official(z1: np.ndarray, z2: np.ndarray, eps: float, order: int) -> tuple[float, float, float]:
    """(loss, L, coding length) as the official training loop computes them, in numpy float64.

    loss_func(p, z): c = p z^T / lamda_inv, explicit powers c^k, trace of the alternating sum;
    loss = -lamda_inv (loss_func(z1, z2) + loss_func(z2, z1)) / (2 m), MEC = mu * mean L / m.
    """
    m, d = z1.shape
    lamda_inv = m * eps / d

    def loss_func(p: np.ndarray, z: np.ndarray) -> float:
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        c = p @ z.T / lamda_inv
        total = np.zeros_like(c)
        for k in range(1, order + 1):
            total += (-1) ** (k + 1) * np.linalg.matrix_power(c, k) / k
        return float(np.trace(total))

    mec = (loss_func(z1, z2) + loss_func(z2, z1)) * 0.5 / m
    return -mec * lamda_inv, mec * m, mec * (m + d) / 2


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


def _loss_and_grads(z1: torch.Tensor, z2: torch.Tensor, **kwargs: object) -> tuple[torch.Tensor, tuple]:
    leaves = (z1.clone().requires_grad_(True), z2.clone().requires_grad_(True))
    loss = mec_loss(*leaves, **kwargs)["loss"]
    return loss.detach(), torch.autograd.grad(loss, leaves)


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize(("eps", "order"), [(64.0, 4), (2.0, 1), (5.0, 3), (0.5, 6)])
def test_matches_the_official_taylor_series_with_explicit_powers(batch: int, dim: int, eps: float, order: int) -> None:
    z1, z2 = _views(batch, dim, seed=batch * 10 + dim)
    loss, logdet, coding_length = _official(z1.numpy(), z2.numpy(), eps, order)
    for path in ("auto", "feature", "sample"):
        out = mec_loss(z1, z2, eps=eps, order=order, path=path)
        assert out["loss"].item() == pytest.approx(loss, rel=1e-10, abs=1e-12)
        assert out["logdet"].item() == pytest.approx(logdet, rel=1e-10, abs=1e-12)
        assert out["coding_length"].item() == pytest.approx(coding_length, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_exact_form_is_the_log_determinant(batch: int, dim: int) -> None:
    z1, z2 = _views(batch, dim, seed=3)
    n1, n2 = (z / np.linalg.norm(z, axis=1, keepdims=True) for z in (z1.numpy(), z2.numpy()))
    sign, expected = np.linalg.slogdet(np.eye(batch) + dim / (batch * 2.0) * n1 @ n2.T)
    assert sign > 0
    for path in ("feature", "sample"):
        out = mec_loss(z1, z2, eps=2.0, exact=True, path=path)
        assert out["logdet"].item() == pytest.approx(expected, rel=1e-10)
        assert out["loss"].item() == pytest.approx(-2.0 / dim * expected, rel=1e-10)


def test_order_one_is_minus_the_mean_cosine() -> None:
    z1, z2 = _views(12, 9, seed=4)
    cosine = torch.nn.functional.cosine_similarity(z1, z2, dim=1).mean()
    for eps in (0.1, 64.0):
        assert mec_loss(z1, z2, eps=eps, order=1)["loss"].item() == pytest.approx(-cosine.item(), rel=1e-12)


@pytest.mark.parametrize(("batch", "dim"), [(8, 32), (32, 8), (10, 10)])
def test_taylor_series_agrees_with_the_exact_form_for_small_lambda(batch: int, dim: int) -> None:
    z1, z2 = _views(batch, dim, seed=5)
    exact = mec_loss(z1, z2, eps=1e3, exact=True)["logdet"].item()
    taylor = mec_loss(z1, z2, eps=1e3, order=4)["logdet"].item()
    assert taylor == pytest.approx(exact, rel=1e-9)
    # a larger a, rho(c) = 0.3, needs more terms: the truncation error decays like rho^(k+1)
    n1, n2 = (torch.nn.functional.normalize(z, dim=1) for z in (z1, z2))
    rho = torch.linalg.eigvals(n1 @ n2.T).abs().max().item()
    eps = dim / (batch * 0.3 / rho)
    exact = mec_loss(z1, z2, eps=eps, exact=True)["logdet"].item()
    errors = [abs(mec_loss(z1, z2, eps=eps, order=k)["logdet"].item() - exact) for k in (2, 8, 30)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-10 * abs(exact)


def test_taylor_trace_log_of_a_general_square_matrix() -> None:
    c = 0.2 * torch.randn(6, 6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for order in (1, 2, 3, 4, 5, 9):
        powers = (np.linalg.matrix_power(c.numpy(), k) for k in range(1, order + 1))
        expected = sum((-1) ** (k + 1) * np.trace(m) / k for k, m in enumerate(powers, start=1))
        assert taylor_trace_log(c, order).item() == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- Sylvester sides, gradients


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("exact", [False, True])
def test_both_sylvester_sides_agree_in_value_and_gradient(batch: int, dim: int, exact: bool) -> None:
    z1, z2 = _views(batch, dim, seed=7)
    loss_f, grads_f = _loss_and_grads(z1, z2, eps=3.0, exact=exact, path="feature")
    loss_s, grads_s = _loss_and_grads(z1, z2, eps=3.0, exact=exact, path="sample")
    assert _rel_err(loss_s, loss_f) < 1e-8
    for gs, gf in zip(grads_s, grads_f):
        assert _rel_err(gs, gf) < 1e-8


@pytest.mark.parametrize("path", ["feature", "sample"])
@pytest.mark.parametrize("exact", [False, True])
def test_gradcheck(path: str, exact: bool) -> None:
    z1, z2 = _views(5, 4, seed=8)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    fn = lambda x, y: mec_loss(x, y, eps=1.5, order=5, exact=exact, path=path)["loss"]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (z1, z2))


@pytest.mark.parametrize("exact", [False, True])
def test_gradients_reach_both_inputs(exact: bool) -> None:
    _, (g1, g2) = _loss_and_grads(*_views(16, 8, seed=9), exact=exact)
    assert g1.abs().sum() > 1e-3 and g2.abs().sum() > 1e-3
    assert torch.isfinite(g1).all() and torch.isfinite(g2).all()


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 10), dim=st.integers(1, 10), seed=st.integers(0, 2**31 - 1), exact=st.booleans())
def test_view_swap_batch_permutation_and_row_scale_invariance(batch: int, dim: int, seed: int, exact: bool) -> None:
    z1, z2 = _views(batch, dim, seed)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(batch, generator=gen)
    row_scale = torch.rand(batch, 1, generator=gen, dtype=torch.float64) * 5 + 0.1
    base = mec_loss(z1, z2, eps=2.0 * dim, exact=exact)
    for other in (
        mec_loss(z2, z1, eps=2.0 * dim, exact=exact),
        mec_loss(z1[perm], z2[perm], eps=2.0 * dim, exact=exact),
        mec_loss(z1 * row_scale, z2, eps=2.0 * dim, exact=exact),  # rows are l2-normalized
    ):
        for key in base:
            assert other[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-12)


def test_aligned_views_score_better_than_independent_ones() -> None:
    z1, z2 = _views(32, 16, seed=10, noise=0.05)
    _, independent = _views(32, 16, seed=11)
    assert mec_loss(z1, z2)["loss"] < mec_loss(z1, independent)["loss"]


def test_negative_determinant_raises_instead_of_nan() -> None:
    z = torch.eye(3, 8, dtype=torch.float64)  # orthonormal rows: c = -(d / (B eps)) I_3 = -(8/3) I_3
    for path in ("feature", "sample"):
        with pytest.raises(ValueError, match=r"^exact: expected det\(I \+ c\) > 0"):
            mec_loss(z, -z, eps=1.0, exact=True, path=path)  # det(I + c) = (1 - 8/3)^3 < 0
    assert torch.isfinite(mec_loss(z, -z, eps=1.0)["loss"])  # the series stays a finite polynomial


def test_zero_rows_give_finite_values_and_gradients() -> None:
    z1, z2 = torch.zeros(4, 6, dtype=torch.float64), _views(4, 6, seed=12)[1]
    loss, grads = _loss_and_grads(z1, z2)
    assert loss.item() == 0.0
    assert all(torch.isfinite(g).all() for g in grads)


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z1, z2 = (v.float() for v in _views(8, 32, seed=13))
    reference = mec_loss(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = mec_loss(z1, z2)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in mec_loss(z1.half(), z2.half(), exact=True).values())
    assert mec_loss(z1.double(), z2.double())["loss"].dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"z1": torch.ones(4)}, "z1"),
        ({"z2": torch.ones(2, 3, 4)}, "z2"),
        ({"z2": torch.ones(4, 7)}, "z2"),
        ({"z1": torch.ones(1, 6), "z2": torch.ones(1, 6)}, "z1"),
        ({"z1": torch.full((4, 6), float("nan"))}, "z1"),
        ({"z2": torch.full((4, 6), float("inf"))}, "z2"),
        ({"z2": torch.ones(4, 6, dtype=torch.int64)}, "z2"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -64.0}, "eps"),
        ({"eps": float("inf")}, "eps"),
        ({"eps": "64"}, "eps"),
        ({"order": 0}, "order"),
        ({"order": -2}, "order"),
        ({"order": 2.0}, "order"),
        ({"order": True}, "order"),
        ({"order": "4"}, "order"),
        ({"exact": 1}, "exact"),
        ({"path": "gram"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"z1": torch.randn(4, 6), "z2": torch.randn(4, 6)} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        mec_loss(**args)


def test_taylor_trace_log_validates_order() -> None:
    with pytest.raises(ValueError, match=r"^order:"):
        taylor_trace_log(torch.eye(3), False)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(mec_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

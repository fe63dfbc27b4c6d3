"""Tests of covssl/objectives/rate_distortion.py against independent float64 numpy references."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import covssl.objectives.rate_distortion as rate_distortion_module
from covssl.objectives.rate_distortion import coding_rate, taylor_coding_rate

# (batch, dim) on both sides of B = d, so "auto" takes each path.
SHAPES = [(3, 10), (8, 32), (16, 6), (7, 7), (40, 12)]


def _randn(batch: int, dim: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=gen, dtype=dtype) + 0.2  # not centered: R uses the raw second moment


def _ref_coding_rate(z: np.ndarray, eps: float) -> float:
    """1/2 logdet(I_d + d / (B eps^2) Z^T Z) on the d x d side with numpy's LU-based slogdet."""
    batch, dim = z.shape
    sign, logdet = np.linalg.slogdet(np.eye(dim) + dim / (batch * eps**2) * z.T @ z)
    assert sign == 1.0
    return 0.5 * logdet


def _ref_taylor(z: np.ndarray, eps: float) -> float:
    """1/2 (a tr S - a^2/2 tr S^2) with S = Z^T Z / B built explicitly, a = d / eps^2."""
    batch, dim = z.shape
    a = dim / eps**2
    s = z.T @ z / batch
    return 0.5 * (a * np.trace(s) - a**2 / 2 * np.trace(s @ s))


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


def _orthogonal(dim: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("eps", [0.05, 0.5, 3.0])
def test_coding_rate_matches_numpy_slogdet(batch: int, dim: int, eps: float) -> None:
    z = _randn(batch, dim, seed=batch * dim)
    expected = _ref_coding_rate(z.numpy(), eps)
    for path in ("auto", "feature", "sample"):
        assert coding_rate(z, eps, path).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("eps", [0.5, 3.0])
def test_taylor_coding_rate_matches_the_explicit_formula(batch: int, dim: int, eps: float) -> None:
    z = _randn(batch, dim, seed=batch + dim)
    expected = _ref_taylor(z.numpy(), eps)
    for path in ("auto", "feature", "sample"):
        assert taylor_coding_rate(z, eps, path).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("fn", [coding_rate, taylor_coding_rate])
def test_paths_agree_in_value_and_gradient(batch: int, dim: int, fn) -> None:
    z = _randn(batch, dim, seed=3)
    results = {}
    for path in ("feature", "sample"):
        leaf = z.clone().requires_grad_(True)
        value = fn(leaf, 0.7, path)
        results[path] = (value.detach(), torch.autograd.grad(value, leaf)[0])
    assert _rel_err(results["sample"][0], results["feature"][0]) < 1e-8
    assert _rel_err(results["sample"][1], results["feature"][1]) < 1e-8


def test_coding_rate_gradient_matches_the_closed_form() -> None:
    # dR/dZ = alpha Z (I + alpha Z^T Z)^{-1} with alpha = d / (B eps^2)
    z = _randn(6, 9, seed=4)
    leaf = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(coding_rate(leaf, 0.5), leaf)
    zn, alpha = z.numpy(), 9 / (6 * 0.25)
    expected = alpha * zn @ np.linalg.inv(np.eye(9) + alpha * zn.T @ zn)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("path", ["feature", "sample"])
def test_gradcheck(path: str) -> None:
    z = _randn(4, 6, seed=5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: coding_rate(x, 0.5, path), (z,))
    assert torch.autograd.gradcheck(lambda x: taylor_coding_rate(x, 0.5, path), (z,))


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 10), dim=st.integers(1, 10), seed=st.integers(0, 2**31 - 1), eps=st.floats(0.1, 5.0))
def test_rotation_and_batch_permutation_invariance(batch: int, dim: int, seed: int, eps: float) -> None:
    # Z^T Z -> Q^T Z^T Z Q under z -> z Q; Z^T Z is unchanged by a permutation of the rows.
    z = _randn(batch, dim, seed)
    q = _orthogonal(dim, seed + 1)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    for fn in (coding_rate, taylor_coding_rate):
        base = fn(z, eps).item()
        assert fn(z @ q, eps).item() == pytest.approx(base, rel=1e-9, abs=1e-12)
        assert fn(z[perm], eps).item() == pytest.approx(base, rel=1e-12, abs=1e-12)


def test_taylor_converges_to_the_coding_rate_with_a_cubic_gap() -> None:
    # logdet(I + aS) = a tr S - a^2/2 tr S^2 + a^3/3 tr S^3 - ..., so R - R_taylor = a^3/6 tr S^3 + O(a^4):
    # the gap falls 8x when a halves (eps -> sqrt(2) eps) and the relative gap falls like a^2.
    z = _randn(20, 8, seed=6)
    zn = z.numpy()
    s = zn.T @ zn / 20
    gaps, rel_gaps = [], []
    for k in range(6):
        eps = 30.0 * math.sqrt(2.0) ** k  # a ||S|| from ~1e-2 down
        rate = coding_rate(z, eps).item()
        gap = rate - taylor_coding_rate(z, eps).item()
        a = 8 / eps**2
        leading = a**3 / 6 * np.trace(s @ s @ s)
        assert gap > 0  # alternating series: the cubic term dominates and is positive
        assert gap == pytest.approx(leading, rel=0.05)
        gaps.append(gap)
        rel_gaps.append(gap / rate)
    ratios = [gaps[k] / gaps[k + 1] for k in range(len(gaps) - 1)]
    assert all(r == pytest.approx(8.0, rel=0.05) for r in ratios), ratios
    rel_ratios = [rel_gaps[k] / rel_gaps[k + 1] for k in range(len(rel_gaps) - 1)]
    assert all(r == pytest.approx(4.0, rel=0.05) for r in rel_ratios), rel_ratios


def test_taylor_is_far_from_the_coding_rate_when_a_is_large() -> None:
    # Not a uniform approximation: with a ||S|| >> 1 the quadratic term makes the surrogate negative.
    z = _randn(20, 8, seed=7)
    assert coding_rate(z, 0.5).item() > 0
    assert taylor_coding_rate(z, 0.5).item() < 0


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 16), dim=st.integers(1, 8), seed=st.integers(0, 2**31 - 1), eps=st.floats(0.1, 3.0))
def test_collapsed_embeddings_give_the_smallest_rate(batch: int, dim: int, seed: int, eps: float) -> None:
    # For a fixed tr S = t, concavity of sum_i log(1 + a lambda_i) puts the minimum at rank 1 (collapse):
    # R = 1/2 log(1 + a t); and the maximum at S = (t/d) I (needs B >= d): R = d/2 log(1 + t / eps^2).
    z = _randn(batch, dim, seed)
    t = (z**2).sum().item() / batch
    gen = torch.Generator().manual_seed(seed + 1)
    c = torch.randn(dim, generator=gen, dtype=torch.float64)
    collapsed = (c * math.sqrt(t) / c.norm()).expand(batch, dim)  # every row the same vector, ||row||^2 = t
    lowest = 0.5 * math.log1p(dim * t / eps**2)
    highest = dim / 2 * math.log1p(t / eps**2)
    assert coding_rate(collapsed, eps).item() == pytest.approx(lowest, rel=1e-10)
    assert lowest - 1e-9 <= coding_rate(z, eps).item() <= highest + 1e-9


@pytest.mark.parametrize(("batch", "dim"), [(16, 4), (50, 50), (64, 10)])
def test_isotropic_embeddings_give_the_largest_rate(batch: int, dim: int) -> None:
    gen = torch.Generator().manual_seed(batch)
    q, _ = torch.linalg.qr(torch.randn(batch, dim, generator=gen, dtype=torch.float64))  # Q^T Q = I
    z = q * math.sqrt(batch / dim)  # S = Z^T Z / B = I / d, tr S = 1
    assert coding_rate(z, 0.5).item() == pytest.approx(dim / 2 * math.log1p(1 / 0.25), rel=1e-12)


# ---------------------------------------------------------------- dtypes, autocast and bad input


@pytest.mark.parametrize("path", ["feature", "sample"])
def test_coding_rate_is_identical_under_autocast_and_float32_for_half_inputs(path: str) -> None:
    z = _randn(12, 24, seed=8, dtype=torch.float32)
    reference = coding_rate(z, 0.5, path)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = coding_rate(z, 0.5, path)
        taylor_autocast = taylor_coding_rate(z, 0.5, path)
    assert under_autocast.dtype == torch.float32
    assert torch.equal(under_autocast, reference)
    assert torch.equal(taylor_autocast, taylor_coding_rate(z, 0.5, path))
    half = z.bfloat16().requires_grad_(True)
    from_half = coding_rate(half, 0.5, path)
    assert from_half.dtype == torch.float32
    assert torch.equal(from_half, coding_rate(half.detach().float(), 0.5, path))
    from_half.backward()
    assert half.grad is not None and half.grad.dtype == torch.bfloat16
    assert taylor_coding_rate(z.half(), 0.5, path).dtype == torch.float32
    assert coding_rate(z.double(), 0.5, path).dtype == torch.float64


def test_overflowing_embeddings_raise_instead_of_nan() -> None:
    z = torch.full((4, 6), 1e20)  # finite, but Z^T Z overflows float32
    with pytest.raises(ValueError, match="positive-definite"):
        coding_rate(z)


@pytest.mark.parametrize("fn", [coding_rate, taylor_coding_rate])
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"z": torch.ones(4)}, "z"),
        ({"z": torch.ones(2, 3, 4)}, "z"),
        ({"z": torch.ones(1, 6)}, "z"),
        ({"z": torch.full((4, 6), float("nan"))}, "z"),
        ({"z": torch.full((4, 6), float("inf"))}, "z"),
        ({"z": torch.ones(4, 6, dtype=torch.int64)}, "z"),
        ({"z": np.ones((4, 6))}, "z"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -0.5}, "eps"),
        ({"eps": float("inf")}, "eps"),
        ({"path": "gram"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(fn, kwargs: dict, name: str) -> None:
    args = {"z": torch.randn(4, 6), "eps": 0.5} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        fn(**args)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(rate_distortion_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

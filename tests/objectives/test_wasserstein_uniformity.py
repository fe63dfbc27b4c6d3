"""Tests of covssl/objectives/wasserstein_uniformity.py against an independent float64 reference."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.wasserstein_uniformity import w2_uniformity

# The package re-exports functions named like their modules, so get the module itself this way.
w2_module = importlib.import_module("covssl.objectives.wasserstein_uniformity")

# (batch, dim) on both sides of B = d: B < d leaves Sigma singular.
SHAPES = [(2, 3), (5, 12), (8, 8), (9, 8), (40, 6), (64, 16), (3, 1), (10, 1)]


def _batch(batch: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=gen, dtype=torch.float64) * 2 + 0.2
    return torch.randn(batch, dim, generator=gen, dtype=torch.float64) * scales + 0.4


def _reference(z: np.ndarray) -> float:
    """The formula of [0] literally: eigh of Sigma (d x d), sqrt of the clipped eigenvalues.

    Eigenvalues below the numerical-rank tolerance are set to 0: eigh returns the exact zeros
    of a singular Sigma as +-1e-17, whose square roots (3e-9) would dominate the comparison.
    """
    batch, dim = z.shape
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    mu = zn.mean(axis=0)
    sigma = sum(np.outer(row - mu, row - mu) for row in zn) / batch
    eigenvalues, vectors = np.linalg.eigh(sigma)
    tolerance = 10 * dim * np.finfo(np.float64).eps * max(eigenvalues.max(), 1e-300)
    eigenvalues = np.where(eigenvalues > tolerance, eigenvalues, 0.0)
    root = vectors @ np.diag(np.sqrt(eigenvalues)) @ vectors.T
    argument = mu @ mu + 1.0 + np.trace(sigma) - 2.0 / math.sqrt(dim) * np.trace(root)
    return math.sqrt(max(argument, 0.0))


def _orthogonal(dim: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def _simplex(dim: int) -> torch.Tensor:
    """The d + 1 vertices of a regular simplex on the unit sphere of R^d: mean 0, Sigma = I/d."""
    centred = torch.eye(dim + 1, dtype=torch.float64) - 1.0 / (dim + 1)  # rows span 1^perp in R^(d+1)
    basis = torch.linalg.svd(centred).Vh[:dim]  # (d, d + 1) orthonormal basis of 1^perp
    vertices = centred @ basis.T  # (d + 1, d) coordinates in that basis
    return vertices / vertices.norm(dim=1, keepdim=True)


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_matches_the_eigendecomposition_reference(batch: int, dim: int) -> None:
    z = _batch(batch, dim, seed=batch * 7 + dim)
    assert w2_uniformity(z).item() == pytest.approx(_reference(z.numpy()), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("dim", [1, 2, 3, 7])
def test_regular_simplex_is_the_optimum(dim: int) -> None:
    z = _simplex(dim).requires_grad_(True)
    value = w2_uniformity(z)
    (grad,) = torch.autograd.grad(value, z)
    assert value.item() == pytest.approx(0.0, abs=1e-7)
    assert torch.isfinite(grad).all()


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 20), dim=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_value_lies_between_zero_and_sqrt_two(batch: int, dim: int, seed: int) -> None:
    z = _batch(batch, dim, seed)
    value = w2_uniformity(z).item()
    assert 0.0 <= value <= math.sqrt(2) + 1e-12
    if batch <= dim:  # Sigma has rank <= B - 1: tr Sigma^1/2 <= sqrt((B - 1) tr Sigma)
        assert value**2 >= 2 - 2 * math.sqrt((batch - 1) / dim) - 1e-12


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize(("batch", "dim"), [(9, 4), (12, 3), (6, 5)])
def test_gradcheck_full_rank_and_b_at_most_d(batch: int, dim: int) -> None:
    # (6, 5): B > d yet the centred batch has rank 5 = d; B <= d is checked below.
    z = _batch(batch, dim, seed=batch + dim).requires_grad_(True)
    assert torch.autograd.gradcheck(w2_uniformity, (z,))


@pytest.mark.parametrize(("batch", "dim"), [(4, 6), (5, 5), (3, 10)])
def test_gradient_is_exact_when_b_at_most_d(batch: int, dim: int) -> None:
    # The zero singular value from centring has left vector 1/sqrt(B), cancelled by the centring.
    z = _batch(batch, dim, seed=3 * batch + dim)
    leaf = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(w2_uniformity(leaf), leaf)
    assert torch.isfinite(grad).all()
    numeric, h = np.zeros((batch, dim)), 1e-6
    for n in range(batch):
        for j in range(dim):
            up, down = z.numpy().copy(), z.numpy().copy()
            up[n, j] += h
            down[n, j] -= h
            numeric[n, j] = (_reference(up) - _reference(down)) / (2 * h)
    np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "name",
    ["collapsed", "collapsed_scaled_rows", "repeated_rows", "two_distinct_rows", "low_rank_big_batch", "antipodal"],
)
def test_rank_deficient_batches_give_finite_values_and_gradients(name: str) -> None:
    base = _batch(6, 5, seed=1)
    mixing = torch.randn(2, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    low_rank = _batch(30, 2, seed=2) @ mixing  # B = 30 > d = 8 but rank 2
    z = {
        "collapsed": torch.full((8, 5), 0.3, dtype=torch.float64),
        "collapsed_scaled_rows": torch.arange(1.0, 9.0, dtype=torch.float64)[:, None] * base[:1],
        "repeated_rows": torch.cat([base, base, base[:2]]),
        "two_distinct_rows": base[[0, 1, 0, 1, 0, 1]],
        "low_rank_big_batch": low_rank,
        "antipodal": torch.cat([base[:1], -base[:1]]),
    }[name]
    for dtype in (torch.float64, torch.float32):
        leaf = z.to(dtype).clone().requires_grad_(True)
        value = w2_uniformity(leaf)
        (grad,) = torch.autograd.grad(value, leaf)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
        expected = _reference(z.numpy())
        assert value.item() == pytest.approx(expected, abs=1e-10 if dtype == torch.float64 else 1e-5)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 16), dim=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_collapsed_batch_gives_sqrt_two(batch: int, dim: int, seed: int) -> None:
    row = _batch(1, dim, seed)
    scales = torch.rand(batch, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.1
    assert w2_uniformity(scales * row).item() == pytest.approx(math.sqrt(2), rel=1e-12)


# ---------------------------------------------------------------- invariances


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 16), dim=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_invariant_to_rotations_and_positive_row_scaling(batch: int, dim: int, seed: int) -> None:
    z = _batch(batch, dim, seed)
    base = w2_uniformity(z).item()
    rotated = w2_uniformity(z @ _orthogonal(dim, seed)).item()
    c = torch.rand(batch, 1, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64) * 10 + 0.01
    assert rotated == pytest.approx(base, rel=1e-9, abs=1e-12)
    assert w2_uniformity(z * c).item() == pytest.approx(base, rel=1e-9, abs=1e-12)
    assert w2_uniformity(z * 3.7).item() == pytest.approx(base, rel=1e-9, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 16), dim=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_invariant_to_permuting_the_samples(batch: int, dim: int, seed: int) -> None:
    z = _batch(batch, dim, seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    assert w2_uniformity(z[perm]).item() == pytest.approx(w2_uniformity(z).item(), rel=1e-10, abs=1e-12)


def test_uniform_batches_are_far_below_collapse() -> None:
    z = torch.randn(512, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    healthy = w2_uniformity(z).item()
    assert healthy < 0.35
    # Dimensional collapse: the same points squeezed into 4 of 32 dimensions.
    squeezed = w2_uniformity(z[:, :4] @ _orthogonal(32, 1)[:4]).item()
    assert squeezed > 2 * healthy


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z = _batch(16, 8, seed=9).float()
    reference = w2_uniformity(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = w2_uniformity(z)
    assert under_autocast.dtype == torch.float32 and torch.equal(under_autocast, reference)
    assert w2_uniformity(z.half()).dtype == torch.float32
    assert w2_uniformity(z.double()).dtype == torch.float64
    with torch.no_grad():  # as a diagnostic
        assert w2_uniformity(z).item() == pytest.approx(_reference(z.double().numpy()), rel=1e-5)


@pytest.mark.parametrize(
    "z",
    [
        torch.ones(4),
        torch.ones(2, 3, 4),
        torch.ones(1, 6),
        torch.ones(4, 0),
        torch.full((4, 6), float("nan")),
        torch.ones(4, 6, dtype=torch.int32),
        [[1.0, 2.0], [3.0, 4.0]],
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(z: object) -> None:
    with pytest.raises(ValueError, match=r"^z:"):
        w2_uniformity(z)  # type: ignore[arg-type]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(w2_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

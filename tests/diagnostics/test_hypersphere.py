"""alignment and uniformity against numpy float64 references of Wang & Isola's formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.diagnostics import alignment, uniformity

from ._data import gaussian


def ref_normalize(z: np.ndarray) -> np.ndarray:
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def ref_alignment(z1: np.ndarray, z2: np.ndarray, alpha: float) -> float:
    return float((np.linalg.norm(ref_normalize(z1) - ref_normalize(z2), axis=1) ** alpha).mean())


def ref_uniformity(z: np.ndarray, t: float) -> float:
    """log of the plain mean over pairs i < j of exp(-t ||zn_i - zn_j||^2)."""
    zn = ref_normalize(z)
    pairs = itertools.combinations(range(len(zn)), 2)
    return float(np.log(np.mean([np.exp(-t * np.sum((zn[i] - zn[j]) ** 2)) for i, j in pairs])))


batches = st.tuples(st.integers(2, 12), st.integers(1, 10), st.integers(0, 2**16))


@settings(max_examples=25, deadline=None)
@given(batches, st.sampled_from([0.5, 1.0, 2.0, 3.0]))
def test_alignment_matches_numpy(shape: tuple[int, int, int], alpha: float) -> None:
    batch, dim, seed = shape
    z1 = gaussian(batch, dim, seed, mean_scale=1.0)
    z2 = z1 + 0.3 * gaussian(batch, dim, seed + 1)
    got = alignment(torch.tensor(z1), torch.tensor(z2), alpha=alpha)
    assert got == pytest.approx(ref_alignment(z1, z2, alpha), rel=1e-10)


def test_alignment_extremes() -> None:
    z = torch.tensor(gaussian(7, 5, seed=0))
    assert alignment(z, 3.0 * z) == pytest.approx(0.0, abs=1e-15)  # same directions
    assert alignment(z, -z, alpha=3.0) == pytest.approx(8.0, rel=1e-12)  # antipodal: 2^alpha


def test_alignment_of_unrelated_views_in_high_dimension() -> None:
    z1, z2 = (torch.tensor(gaussian(500, 256, seed=s)) for s in (1, 2))
    assert alignment(z1, z2) == pytest.approx(2.0, rel=0.02)  # ||zn1 - zn2||^2 ~ 2


@settings(max_examples=25, deadline=None)
@given(batches, st.sampled_from([0.5, 2.0, 5.0]), st.floats(0.0, 3.0))
def test_uniformity_matches_numpy(shape: tuple[int, int, int], t: float, mean_scale: float) -> None:
    batch, dim, seed = shape
    z = gaussian(batch, dim, seed, mean_scale)
    got = uniformity(torch.tensor(z, dtype=torch.float32), t=t)
    assert got == pytest.approx(ref_uniformity(z, t), rel=1e-5, abs=1e-6)
    assert got >= -2 * t * batch / (batch - 1) - 1e-9  # Jensen bound


def test_uniformity_collapsed_is_zero() -> None:
    assert uniformity(torch.tensor([[0.2, -1.0, 4.0]]).repeat(10, 1)) == 0.0


def test_uniformity_reaches_its_bound_on_a_regular_simplex() -> None:
    batch, t = 6, 2.0
    simplex = np.eye(batch) - 1.0 / batch  # B unit-norm-able points with equal pair distances
    assert uniformity(torch.tensor(simplex), t=t) == pytest.approx(-2 * t * batch / (batch - 1), rel=1e-12)
    assert uniformity(torch.eye(4), t=t) == pytest.approx(-4.0, rel=1e-12)  # orthogonal rows


def test_uniformity_does_not_underflow_for_large_t() -> None:
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # one antipodal pair: ||zn_i - zn_j||^2 = 4
    assert uniformity(z, t=500.0) == pytest.approx(-2000.0, rel=1e-12)
    assert math.isfinite(uniformity(torch.tensor(gaussian(20, 3, seed=3)), t=500.0))


def test_hyperparameters_are_checked() -> None:
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="alpha"):
        alignment(z, z, alpha=0.0)
    with pytest.raises(ValueError, match="t"):
        uniformity(z, t=-1.0)
    with pytest.raises(ValueError, match="z2"):
        alignment(z, torch.randn(5, 3))

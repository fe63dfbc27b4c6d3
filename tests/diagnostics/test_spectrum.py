"""spectrum, effective_rank, isotropy against numpy float64 references of the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.diagnostics import effective_rank, isotropy, spectrum

from ._data import gaussian, rank_k, whitened


def ref_covariance_eigenvalues(z: np.ndarray) -> np.ndarray:
    """eig((Z - mean)^T (Z - mean) / (B - 1)), descending, negatives clamped to 0."""
    zc = z - z.mean(axis=0, keepdims=True)
    cov = zc.T @ zc / (z.shape[0] - 1)
    return np.clip(np.sort(np.linalg.eigvalsh(cov))[::-1], 0.0, None)


def ref_effective_rank(z: np.ndarray) -> float:
    """Roy & Vetterli: exp(-sum p log p), p = s / sum s, s = singular values of Z - mean."""
    s = np.linalg.svd(z - z.mean(axis=0, keepdims=True), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def ref_eigenvalue_entropy(eigenvalues: np.ndarray) -> float:
    q = eigenvalues / eigenvalues.sum()
    q = q[q > 0]
    return float(-(q * np.log(q)).sum() / np.log(len(eigenvalues)))


shapes = st.tuples(st.integers(2, 12), st.integers(1, 10), st.integers(0, 2**16))


# --- spectrum ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["auto", "feature", "sample"])
def test_spectrum_of_whitened_data_is_all_ones(path: str) -> None:
    z = torch.tensor(whitened(20, 6))
    np.testing.assert_allclose(spectrum(z, path=path).numpy(), np.ones(6), atol=1e-10)


@pytest.mark.parametrize("path", ["feature", "sample"])
def test_spectrum_of_rank_k_data(path: str) -> None:
    z = torch.tensor(rank_k(9, 12, 3))  # B < d: the sample side pads d - B zeros
    expected = np.array([1.0, 1.0, 1.0] + [0.0] * 9)
    np.testing.assert_allclose(spectrum(z, path=path).numpy(), expected, atol=1e-10)


def test_spectrum_of_constant_embeddings_is_zero() -> None:
    z = torch.tensor([[0.1, -2.3, 7.0]]).repeat(5, 1)
    values = spectrum(z)
    assert values.dtype == torch.float64 and values.shape == (3,)
    assert float(values.abs().max()) < 1e-20


@settings(max_examples=25, deadline=None)
@given(shapes)
def test_spectrum_matches_numpy(shape: tuple[int, int, int]) -> None:
    batch, dim, seed = shape
    z = gaussian(batch, dim, seed, mean_scale=2.0)
    expected = ref_covariance_eigenvalues(z)
    for path in ("auto", "feature", "sample"):
        got = spectrum(torch.tensor(z, dtype=torch.float32), path=path).numpy()
        assert np.all(np.diff(got) <= 0) and np.all(got >= 0)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(expected.max(), 1.0))


# --- effective rank ---------------------------------------------------------------------


def test_effective_rank_of_whitened_data_is_dim() -> None:
    assert effective_rank(torch.tensor(whitened(40, 7))) == pytest.approx(7.0, abs=1e-9)


@pytest.mark.parametrize(("batch", "dim", "k"), [(30, 16, 1), (30, 16, 5), (8, 32, 7), (50, 10, 10)])
def test_effective_rank_of_rank_k_data_is_k(batch: int, dim: int, k: int) -> None:
    z = rank_k(batch, dim, k)
    assert effective_rank(torch.tensor(z)) == pytest.approx(k, abs=1e-6)
    # float32 storage leaves the zero directions at ~1e-7 relative: still about k
    assert effective_rank(torch.tensor(z, dtype=torch.float32)) == pytest.approx(k, rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_effective_rank_of_constant_embeddings_is_zero(dtype: torch.dtype) -> None:
    row = torch.tensor([[0.1, -2.3, 7.0, 1e-3, 5e4]], dtype=dtype)
    assert effective_rank(row.repeat(17, 1)) == 0.0
    assert effective_rank(torch.zeros(4, 3, dtype=dtype)) == 0.0
    # 0.7 * 7 / 7 != 0.7 in float64: centering leaves ~1e-16 per entry, which is not variation
    constant = torch.tensor([[0.1, 0.7, 2.3]], dtype=dtype).repeat(7, 1)
    assert effective_rank(constant) == 0.0
    assert isotropy(constant)["eigenvalue_entropy"] == 0.0


def test_effective_rank_of_two_unequal_directions() -> None:
    # centered singular values sqrt(2) * 3 and sqrt(2) * 1 -> p = (3/4, 1/4)
    z = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    p = np.array([0.75, 0.25])
    assert effective_rank(z) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(shapes)
def test_effective_rank_matches_numpy(shape: tuple[int, int, int]) -> None:
    batch, dim, seed = shape
    z = gaussian(batch, dim, seed, mean_scale=1.0)
    got = effective_rank(torch.tensor(z))
    assert got == pytest.approx(ref_effective_rank(z), rel=1e-9)
    assert 1.0 <= got <= min(batch - 1, dim) + 1e-9
    assert effective_rank(torch.tensor(37.0 * z)) == pytest.approx(got, rel=1e-9)  # scale-free


# --- isotropy ---------------------------------------------------------------------------


def test_isotropy_of_whitened_data() -> None:
    result = isotropy(torch.tensor(whitened(30, 8)))
    assert result["condition_number"] == pytest.approx(1.0, abs=1e-9)
    assert result["eigenvalue_entropy"] == pytest.approx(1.0, abs=1e-12)
    assert result["effective_rank"] == pytest.approx(8.0, abs=1e-9)


def test_isotropy_of_rank_k_data() -> None:
    result = isotropy(torch.tensor(rank_k(30, 8, 3)))
    assert result["condition_number"] == math.inf
    assert result["eigenvalue_entropy"] == pytest.approx(math.log(3) / math.log(8), abs=1e-9)
    assert result["effective_rank"] == pytest.approx(3.0, abs=1e-9)


def test_isotropy_of_constant_embeddings() -> None:
    result = isotropy(torch.full((6, 4), 2.5))
    assert result == {"condition_number": math.inf, "eigenvalue_entropy": 0.0, "effective_rank": 0.0}


def test_isotropy_is_singular_when_batch_is_smaller_than_dim() -> None:
    z = gaussian(5, 9, seed=3)
    result = isotropy(torch.tensor(z))
    assert result["condition_number"] == math.inf
    eigenvalues = ref_covariance_eigenvalues(z)
    eigenvalues[4:] = 0.0  # rank B - 1 = 4: the rest is round-off
    assert result["eigenvalue_entropy"] == pytest.approx(ref_eigenvalue_entropy(eigenvalues), rel=1e-9)


def test_isotropy_in_one_dimension() -> None:
    assert isotropy(torch.tensor([[1.0], [2.0], [4.0]]))["eigenvalue_entropy"] == 1.0


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(3, 10), st.integers(0, 2**16))
def test_isotropy_matches_numpy(dim: int, extra: int, seed: int) -> None:
    batch = dim + extra  # B - 1 > d: the covariance is nonsingular
    z = gaussian(batch, dim, seed, mean_scale=1.0)
    eigenvalues = ref_covariance_eigenvalues(z)
    result = isotropy(torch.tensor(z))
    assert result["condition_number"] == pytest.approx(eigenvalues[0] / eigenvalues[-1], rel=1e-7)
    expected_entropy = 1.0 if dim == 1 else ref_eigenvalue_entropy(eigenvalues)
    assert result["eigenvalue_entropy"] == pytest.approx(expected_entropy, rel=1e-9)
    assert result["effective_rank"] == pytest.approx(ref_effective_rank(z), rel=1e-9)

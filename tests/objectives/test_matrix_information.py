"""Von Neumann entropy of the trace-normalized covariance (Matrix-SSL, Zhang et al. 2024)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.matrix_information import matrix_entropy


def reference_entropy(z: np.ndarray, center: bool = True, normalize: bool = False) -> float:
    """-sum lambda log lambda of Sigma / tr Sigma, Sigma built on the d x d side with loops."""
    x = z.astype(np.float64)
    if normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    batch, dim = x.shape
    if center:
        x = x - x.sum(axis=0) / batch
    sigma = np.zeros((dim, dim))
    for b in range(batch):
        sigma += np.outer(x[b], x[b])
    sigma /= batch - 1 if center else batch
    if np.trace(sigma) == 0.0:
        return 0.0  # Sigma = 0 (identical rows): defined as entropy 0, the collapsed value
    k = sigma / np.trace(sigma)
    eigenvalues = np.linalg.eigvalsh(k)
    return float(-sum(lam * math.log(lam) for lam in eigenvalues if lam > 1e-12))


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _anisotropic(seed: int, batch: int, dim: int) -> torch.Tensor:
    """Random embeddings with a non-flat spectrum (entropy well below log d)."""
    scales = torch.logspace(0, -1, dim, dtype=torch.float64)
    return _randn(seed, batch, dim) * scales + 0.3


def _orthogonal(seed: int, dim: int) -> torch.Tensor:
    q, r = torch.linalg.qr(_randn(seed, dim, dim))
    return q * torch.sign(torch.diagonal(r))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(2, 9),
    dim=st.integers(1, 9),
    center=st.booleans(),
    normalize=st.booleans(),
    path=st.sampled_from(["auto", "feature", "sample"]),
)
def test_matches_reference(seed: int, batch: int, dim: int, center: bool, normalize: bool, path: str) -> None:
    z = _anisotropic(seed, batch, dim)
    got = matrix_entropy(z, center=center, normalize=normalize, path=path).item()  # type: ignore[arg-type]
    assert got == pytest.approx(reference_entropy(z.numpy(), center, normalize), abs=1e-9)


@pytest.mark.parametrize(("batch", "dim"), [(5, 12), (12, 5)])
def test_both_sides_give_the_same_value_and_gradient(batch: int, dim: int) -> None:
    z = _anisotropic(0, batch, dim).requires_grad_(True)
    values, grads = [], []
    for path in ("feature", "sample"):
        value = matrix_entropy(z, path=path)  # type: ignore[arg-type]
        values.append(value)
        grads.append(torch.autograd.grad(value, z)[0])
    torch.testing.assert_close(values[0], values[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("batch", "dim", "path"), [(6, 3, "feature"), (4, 6, "sample"), (4, 6, "feature")])
def test_gradcheck(batch: int, dim: int, path: str) -> None:
    z = _anisotropic(1, batch, dim).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: matrix_entropy(x, path=path), (z,))  # type: ignore[arg-type]

    def matrix_ssl(x: torch.Tensor) -> torch.Tensor:
        return matrix_entropy(x, center=False, normalize=True, path=path)  # type: ignore[arg-type]

    assert torch.autograd.gradcheck(matrix_ssl, (z,))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(2, 10), dim=st.integers(2, 6), scale=st.floats(1e-3, 1e3))
def test_invariant_to_rotation_permutation_and_scale(seed: int, batch: int, dim: int, scale: float) -> None:
    z = _anisotropic(seed, batch, dim)
    base = matrix_entropy(z).item()
    assert matrix_entropy(z @ _orthogonal(seed + 1, dim)).item() == pytest.approx(base, abs=1e-9)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    assert matrix_entropy(z[perm]).item() == pytest.approx(base, abs=1e-9)
    assert matrix_entropy(scale * z).item() == pytest.approx(base, abs=1e-9)


def test_isotropic_embeddings_reach_log_d() -> None:
    dim = 6
    z = _randn(0, 40, dim)
    zc = z - z.mean(dim=0)
    # Whiten exactly: Zc = Q R, so Zc R^-1 = Q has orthonormal, zero-mean columns.
    q, _ = torch.linalg.qr(zc)
    assert matrix_entropy(q).item() == pytest.approx(math.log(dim), abs=1e-10)
    assert matrix_entropy(_anisotropic(0, 40, dim)).item() < math.log(dim) - 0.05


def test_collapsed_embeddings_give_zero_with_a_finite_gradient() -> None:
    rank_one = (_randn(0, 10, 1) * _randn(1, 1, 7)).requires_grad_(True)
    constant = torch.ones(10, 7, dtype=torch.float64, requires_grad=True)
    for z in (rank_one, constant):
        value = matrix_entropy(z)
        assert value.item() == pytest.approx(0.0, abs=1e-10)
        (grad,) = torch.autograd.grad(value, z)
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_rounding_noise_in_the_spectrum_is_not_counted(seed: int) -> None:
    """eigvalsh in float32 returns ~1e-8 noise for the d - 1 zero eigenvalues of a rank-1 batch;
    counting them as spectrum would add ~1e-5 of spurious entropy."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(256, 1, generator=gen) * torch.randn(1, 128, generator=gen) + torch.randn(1, 128, generator=gen)
    assert abs(matrix_entropy(z).item()) < 2e-6


def test_rank_deficient_batch_is_bounded_by_log_of_the_rank() -> None:
    """B < d: a centered batch of B rows has rank <= B - 1, and the gradient stays finite."""
    z = _randn(2, 4, 16).requires_grad_(True)
    value = matrix_entropy(z)
    assert value.item() <= math.log(3) + 1e-9
    assert torch.isfinite(torch.autograd.grad(value, z)[0]).all()


def test_low_precision_computes_in_float32() -> None:
    z = _anisotropic(3, 32, 8)
    expected = reference_entropy(z.numpy())
    got = matrix_entropy(z.bfloat16())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, abs=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = matrix_entropy(z.float())
    assert inside.dtype == torch.float32
    assert inside.item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"z": torch.randn(1, 4)}, "z"),
        ({"z": torch.randn(4)}, "z"),
        ({"z": torch.full((4, 3), float("inf"))}, "z"),
        ({"z": torch.randn(4, 3), "path": "diagonal"}, "path"),
        ({"z": torch.randn(4, 3), "center": "yes"}, "center"),
        ({"z": torch.randn(4, 3), "normalize": 1}, "normalize"),
    ],
)
def test_bad_input(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        matrix_entropy(**kwargs)

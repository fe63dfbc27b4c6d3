"""Tests of covssl/objectives/wmse.py against an independent float64 numpy reference."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.wmse import cholesky_whiten, wmse_loss

wmse_module = importlib.import_module("covssl.objectives.wmse")

# (batch, dim, w_size): whole batch and chunked, w_size > dim always
CASES = [(8, 3, None), (12, 5, None), (12, 2, 4), (30, 4, 10), (40, 7, 8), (9, 8, None)]


def _views(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, generator=gen, dtype=torch.float64) + 2 * torch.eye(dim, dtype=torch.float64)
    z1 = torch.randn(batch, dim, generator=gen, dtype=torch.float64) @ mix - 1.5
    z2 = 0.6 * z1 + torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return z1, z2


def _np_whiten(z: np.ndarray, ridge: float = 0.0, shrink: float = 0.0) -> np.ndarray:
    """Cholesky whitening of one sub-batch: (1 - shrink) C + (shrink + ridge) I, no eigh."""
    n, d = z.shape
    zc = z - z.mean(axis=0)
    cov = (1 - shrink) * (zc.T @ zc) / (n - 1) + (shrink + ridge) * np.eye(d)
    factor = np.linalg.cholesky(cov)
    return np.linalg.solve(factor, zc.T).T  # w_b = L^{-1} zc_b


def _np_loss(
    z1: np.ndarray, z2: np.ndarray, chunks: list[np.ndarray], ridge: float = 0.0, shrink: float = 0.0
) -> float:
    """2 - 2 mean_b cos(w1_b, w2_b), each view whitened per chunk of row indices."""
    w1, w2 = np.empty_like(z1), np.empty_like(z2)
    for idx in chunks:
        w1[idx] = _np_whiten(z1[idx], ridge, shrink)
        w2[idx] = _np_whiten(z2[idx], ridge, shrink)
    cos = (w1 * w2).sum(axis=1) / (np.linalg.norm(w1, axis=1) * np.linalg.norm(w2, axis=1))
    return float(2 - 2 * cos.mean())


def _consecutive(batch: int, w_size: int | None) -> list[np.ndarray]:
    size = batch if w_size is None else w_size
    return [np.arange(start, start + size) for start in range(0, batch, size)]


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim", "w_size"), CASES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_matches_the_numpy_reference(batch: int, dim: int, w_size: int | None, eps: float) -> None:
    z1, z2 = _views(batch, dim, seed=batch * 10 + dim)
    expected = _np_loss(z1.numpy(), z2.numpy(), _consecutive(batch, w_size), shrink=eps)
    out = wmse_loss(z1, z2, w_size=w_size, eps=eps)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert out["cosine"].item() == pytest.approx(1 - expected / 2, rel=1e-10, abs=1e-12)


def test_a_permutation_of_the_inputs_reproduces_one_official_random_split() -> None:
    # official: perm = randperm(bs).view(-1, w_size); whiten h[idx] of each view for every idx
    z1, z2 = _views(24, 3, seed=5)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    chunks = [p.numpy() for p in perm.view(-1, 6)]
    expected = _np_loss(z1.numpy(), z2.numpy(), chunks)
    assert wmse_loss(z1[perm], z2[perm], w_size=6)["loss"].item() == pytest.approx(expected, rel=1e-10)


def test_official_shrinkage_equals_a_ridge_of_eps_over_one_minus_eps() -> None:
    # (1 - eps) C + eps I = (1 - eps)(C + eps/(1 - eps) I): same directions, same cosines
    z1, z2 = _views(10, 6, seed=2)
    eps = 0.2
    expected = _np_loss(z1.numpy(), z2.numpy(), _consecutive(10, None), ridge=eps / (1 - eps))
    assert wmse_loss(z1, z2, eps=eps)["loss"].item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("batch", "dim"), [(8, 3), (40, 6), (7, 6)])
def test_whitened_batch_has_zero_mean_and_identity_covariance(batch: int, dim: int) -> None:
    z, _ = _views(batch, dim, seed=batch)
    w = cholesky_whiten(z)
    torch.testing.assert_close(w.mean(dim=0), torch.zeros(dim, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.cov(w.T), torch.eye(dim, dtype=torch.float64), atol=1e-10, rtol=0)
    np.testing.assert_allclose(w.numpy(), _np_whiten(z.numpy()), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("batch", "dim", "w_size"), [(12, 2, 4), (30, 4, 10), (40, 7, 8)])
def test_chunked_loss_is_the_mean_of_the_per_chunk_losses(batch: int, dim: int, w_size: int) -> None:
    z1, z2 = _views(batch, dim, seed=3)
    chunked = wmse_loss(z1, z2, w_size=w_size)["loss"]
    parts = [wmse_loss(z1[s : s + w_size], z2[s : s + w_size])["loss"] for s in range(0, batch, w_size)]
    torch.testing.assert_close(chunked, torch.stack(parts).mean(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(("batch", "dim", "w_size", "eps"), [(6, 3, None, 0.0), (8, 3, 4, 0.0), (4, 5, None, 0.3)])
def test_gradcheck(batch: int, dim: int, w_size: int | None, eps: float) -> None:
    z1, z2 = _views(batch, dim, seed=8)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: wmse_loss(x, y, w_size=w_size, eps=eps)["loss"], (z1, z2))


# ---------------------------------------------------------------- properties


def _upper_triangular(dim: int, gen: torch.Generator) -> torch.Tensor:
    u = torch.triu(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    return u - torch.diag(torch.diagonal(u)) + torch.diag(torch.rand(dim, generator=gen, dtype=torch.float64) + 0.5)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(3, 14), dim=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_invariant_to_upper_triangular_maps_and_shifts_of_each_view(batch: int, dim: int, seed: int) -> None:
    # z -> z U + t, U upper-triangular with positive diagonal: chol(U^T C U) = U^T chol(C), so the
    # whitened vectors are unchanged exactly (per view: each view has its own U and t).
    batch = max(batch, dim + 1)
    z1, z2 = _views(batch, dim, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    u1, u2 = _upper_triangular(dim, gen), _upper_triangular(dim, gen)
    t1, t2 = (torch.randn(dim, generator=gen, dtype=torch.float64) * 5 for _ in range(2))
    base = wmse_loss(z1, z2)["loss"].item()
    moved = wmse_loss(z1 @ u1 + t1, z2 @ u2 + t2)["loss"].item()
    assert moved == pytest.approx(base, rel=1e-7, abs=1e-9)


def test_not_invariant_to_a_rotation_cholesky_fixes_the_basis() -> None:
    # w' = Q_v w with a view-dependent orthogonal Q_v = L'^{-1} R^T L: cosines between views change.
    z1, z2 = _views(16, 4, seed=11)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    assert abs(wmse_loss(z1 @ q, z2 @ q)["loss"].item() - wmse_loss(z1, z2)["loss"].item()) > 1e-3


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 12), dim=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_view_swap_and_row_permutation_invariance(batch: int, dim: int, seed: int) -> None:
    batch = max(batch, dim + 1)
    z1, z2 = _views(batch, dim, seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    base = wmse_loss(z1, z2)["loss"].item()
    assert wmse_loss(z2, z1)["loss"].item() == pytest.approx(base, rel=1e-9, abs=1e-10)
    assert wmse_loss(z1[perm], z2[perm])["loss"].item() == pytest.approx(base, rel=1e-9, abs=1e-10)


def test_aligned_views_give_zero_and_opposite_views_give_four() -> None:
    z1, _ = _views(20, 5, seed=4)
    assert wmse_loss(z1, 3 * z1 - 2)["loss"].item() == pytest.approx(0.0, abs=1e-12)
    assert wmse_loss(z1, -z1)["loss"].item() == pytest.approx(4.0, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(2, 10),
    dim=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-6, 1.0, 1e4]),
    eps=st.sampled_from([0.0, 1e-3]),
)
def test_finite_input_never_gives_nan(batch: int, dim: int, seed: int, scale: float, eps: float) -> None:
    z1, z2 = (v.float() * scale for v in _views(batch, dim, seed))
    z1.requires_grad_(True)
    try:
        loss = wmse_loss(z1, z2, eps=eps)["loss"]
    except ValueError:
        return  # too few rows or a singular covariance: reported, never NaN
    (grad,) = torch.autograd.grad(loss, z1)
    assert math.isfinite(loss.item()) and 0.0 - 1e-5 <= loss.item() <= 4.0 + 1e-5
    assert bool(torch.isfinite(grad).all())


def test_eps_allows_fewer_rows_than_dimensions() -> None:
    z1, z2 = _views(4, 6, seed=0)
    assert math.isfinite(wmse_loss(z1, z2, eps=0.1)["loss"].item())


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z1, z2 = (v.float() for v in _views(16, 4, seed=9))
    reference = wmse_loss(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = wmse_loss(z1, z2)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in wmse_loss(z1.half(), z2.half()).values())
    assert wmse_loss(z1.double(), z2.double())["loss"].dtype == torch.float64
    assert cholesky_whiten(z1.bfloat16()).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "name", "text"),
    [
        ({"z1": torch.ones(4)}, "z1", "2-D"),
        ({"z2": torch.ones(12, 5)}, "z2", "same shape"),
        ({"z1": torch.full((12, 3), float("nan"))}, "z1", "finite"),
        ({"z2": torch.ones(12, 3, dtype=torch.int64)}, "z2", "floating"),
        ({"z1": torch.randn(3, 3), "z2": torch.randn(3, 3)}, "z1", "singular"),
        ({"w_size": 3}, "w_size", r"\(3 > 3\)"),
        ({"w_size": 5}, "w_size", "divisor"),
        ({"w_size": 24}, "w_size", r"\[2, batch size 12\]"),
        ({"w_size": 1}, "w_size", r"\[2, batch size 12\]"),
        ({"w_size": 4.0}, "w_size", "int"),
        ({"w_size": True}, "w_size", "int"),
        ({"eps": -0.1}, "eps", ">= 0"),
        ({"eps": 1.0}, "eps", r"\[0, 1\)"),
        ({"eps": "0"}, "eps", "non-negative"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str, text: str) -> None:
    args = {"z1": torch.randn(12, 3), "z2": torch.randn(12, 3)} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:.*{text}"):
        wmse_loss(**args)


def test_singular_covariances_raise_value_error_naming_view_and_chunk() -> None:
    z1, z2 = _views(12, 3, seed=1)
    with pytest.raises(ValueError, match=r"^z1: .*Cholesky .*sub-batch 0 \(rows 0\.\.11\)"):
        wmse_loss(torch.full((12, 3), 0.5, dtype=torch.float64), z2)  # collapsed: C = 0
    broken = z2.clone()
    broken[6:] = 0.25  # the second chunk of view 2 is constant
    with pytest.raises(ValueError, match=r"^z2: .*sub-batch 1 \(rows 6\.\.11\)"):
        wmse_loss(z1, broken, w_size=6)
    with pytest.raises(ValueError, match=r"^z: .*Cholesky"):
        cholesky_whiten(torch.zeros(8, 2))
    with pytest.raises(ValueError, match=r"^z: expected more rows than dimensions"):
        cholesky_whiten(torch.randn(3, 4))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(wmse_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

"""Tests of covssl/objectives/barlow_twins.py against independent float64 references."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.barlow_twins import barlow_twins_loss

# The package re-exports functions named like their modules, so get the module itself this way.
barlow_module = importlib.import_module("covssl.objectives.barlow_twins")

# (batch, dim) on both sides of B = d, so "auto" takes each path.
SHAPES = [(3, 10), (8, 32), (16, 6), (7, 7), (40, 12)]


def _views(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=gen, dtype=torch.float64) * 3 + 0.1
    z1 = torch.randn(batch, dim, generator=gen, dtype=torch.float64) * scales - 1.0
    z2 = 0.7 * z1 + 0.5 * torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return z1, z2


def _reference(z1: np.ndarray, z2: np.ndarray, lambd: float, eps: float) -> tuple[float, float]:
    """(on_diagonal, off_diagonal) from the paper with explicit loops over the d x d matrix."""
    batch, dim = z1.shape

    def standardize(z: np.ndarray) -> np.ndarray:
        mean = z.mean(axis=0)
        var = ((z - mean) ** 2).mean(axis=0)  # biased, as BatchNorm1d normalizes in training mode
        return (z - mean) / np.sqrt(var + eps)

    a, b = standardize(z1), standardize(z2)
    on, off = 0.0, 0.0
    for i in range(dim):
        for j in range(dim):
            c_ij = sum(a[n, i] * b[n, j] for n in range(batch)) / batch
            if i == j:
                on += (1 - c_ij) ** 2
            else:
                off += c_ij**2
    return on, off


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize(("lambd", "eps"), [(0.0051, 1e-5), (0.5, 1e-2)])
def test_matches_an_explicit_loop_reference(batch: int, dim: int, lambd: float, eps: float) -> None:
    z1, z2 = _views(batch, dim, seed=batch * 10 + dim)
    on, off = _reference(z1.numpy(), z2.numpy(), lambd, eps)
    for path in ("auto", "feature", "sample"):
        out = barlow_twins_loss(z1, z2, lambd=lambd, eps=eps, path=path)
        assert out["on_diagonal"].item() == pytest.approx(on, rel=1e-10)
        assert out["off_diagonal"].item() == pytest.approx(off, rel=1e-10)
        assert out["loss"].item() == pytest.approx(on + lambd * off, rel=1e-10)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_matches_batchnorm_cross_correlation_in_value_and_gradient(batch: int, dim: int) -> None:
    # The official forward: BatchNorm1d(affine=False) in training mode, C = bn(z1)^T bn(z2) / B.
    z1, z2 = _views(batch, dim, seed=batch + dim)
    bn = torch.nn.BatchNorm1d(dim, affine=False).double().train()
    r1, r2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    c = bn(r1).T @ bn(r2) / batch
    off = ~torch.eye(dim, dtype=torch.bool)
    ref = (torch.diagonal(c) - 1).pow(2).sum() + 0.0051 * c[off].pow(2).sum()
    ref_grads = torch.autograd.grad(ref, (r1, r2))
    l1, l2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = barlow_twins_loss(l1, l2)["loss"]
    grads = torch.autograd.grad(loss, (l1, l2))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    for g, r in zip(grads, ref_grads):
        assert _rel_err(g, r) < 1e-9


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_paths_agree_in_value_and_gradient(batch: int, dim: int) -> None:
    z1, z2 = _views(batch, dim, seed=7)
    results = {}
    for path in ("feature", "sample"):
        leaves = (z1.clone().requires_grad_(True), z2.clone().requires_grad_(True))
        out = barlow_twins_loss(*leaves, path=path)
        results[path] = (out["loss"].detach(), torch.autograd.grad(out["loss"], leaves))
    assert _rel_err(results["sample"][0], results["feature"][0]) < 1e-8
    for gs, gf in zip(results["sample"][1], results["feature"][1]):
        assert _rel_err(gs, gf) < 1e-8


@pytest.mark.parametrize("path", ["feature", "sample"])
def test_gradcheck(path: str) -> None:
    z1, z2 = _views(5, 4, seed=8)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: barlow_twins_loss(x, y, lambd=0.3, path=path)["loss"], (z1, z2))


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 12), dim=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_batch_permutation_and_view_swap_invariance(batch: int, dim: int, seed: int) -> None:
    z1, z2 = _views(batch, dim, seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    base = barlow_twins_loss(z1, z2)
    permuted = barlow_twins_loss(z1[perm], z2[perm])
    swapped = barlow_twins_loss(z2, z1)  # C -> C^T: same diagonal, same off-diagonal sum
    for key in base:
        assert permuted[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-10)
        assert swapped[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-10)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(3, 12),
    dim=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.5, 2.0),
    shift=st.floats(-10.0, 10.0),
)
def test_invariant_to_per_dimension_affine_maps(batch: int, dim: int, seed: int, scale: float, shift: float) -> None:
    # Batch standardization removes any z -> s * z + t per dimension (up to eps / Var, tiny here).
    z1, z2 = _views(batch, dim, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    s = scale * (torch.rand(dim, generator=gen, dtype=torch.float64) + 0.5)
    t = shift * torch.randn(dim, generator=gen, dtype=torch.float64)
    z1 = z1 / z1.std(dim=0)  # unit variance, so eps = 1e-12 is negligible
    base = barlow_twins_loss(z1, z2, eps=1e-12)["loss"].item()
    moved = barlow_twins_loss(z1 * s + t, z2, eps=1e-12)["loss"].item()
    assert moved == pytest.approx(base, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(("batch", "dim"), [(16, 4), (51, 50), (64, 10)])
def test_identical_whitened_views_give_about_zero(batch: int, dim: int) -> None:
    gen = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    q, _ = torch.linalg.qr(x - x.mean(dim=0))  # centered orthonormal columns
    z = q * math.sqrt(batch) - 0.3  # biased covariance exactly I
    out = barlow_twins_loss(z, z)
    # C = I / (1 + eps): on = d (eps / (1 + eps))^2 ~ d * 1e-10, off = 0
    assert out["on_diagonal"].item() == pytest.approx(dim * (1e-5 / (1 + 1e-5)) ** 2, rel=1e-4)
    assert out["off_diagonal"].item() == pytest.approx(0.0, abs=1e-12)
    assert out["loss"].item() < 1e-8


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 12), dim=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_collapsed_views_give_exactly_dim(batch: int, dim: int, seed: int) -> None:
    constant = torch.full((batch, dim), 0.5, dtype=torch.float64)  # 0.5: exact mean, exact zero residual
    z1, _ = _views(batch, dim, seed)
    out = barlow_twins_loss(constant, z1)
    assert out["on_diagonal"].item() == float(dim)
    assert out["off_diagonal"].item() == 0.0


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z1, z2 = (v.float() for v in _views(8, 32, seed=9))
    reference = barlow_twins_loss(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = barlow_twins_loss(z1, z2)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in barlow_twins_loss(z1.half(), z2.half()).values())
    assert barlow_twins_loss(z1.double(), z2.double())["loss"].dtype == torch.float64


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
        ({"lambd": -0.1}, "lambd"),
        ({"lambd": "0.1"}, "lambd"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -1e-5}, "eps"),
        ({"path": "gram"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"z1": torch.randn(4, 6), "z2": torch.randn(4, 6)} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        barlow_twins_loss(**args)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(barlow_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

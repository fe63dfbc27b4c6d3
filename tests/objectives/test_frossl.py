"""Tests of covssl/objectives/frossl.py against an independent float64 numpy reference."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.frossl import frossl_loss, frossl_pair_loss, frossl_regularizer

frossl_module = importlib.import_module("covssl.objectives.frossl")

# (batch, dim) on both sides of B = d, so "auto" takes each path.
SHAPES = [(3, 10), (8, 32), (16, 6), (7, 7), (40, 12)]


def _views(num_views: int, batch: int, dim: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=gen, dtype=torch.float64) * 3 + 0.1
    base = torch.randn(batch, dim, generator=gen, dtype=torch.float64) * scales + 0.5
    return [base + 0.6 * torch.randn(batch, dim, generator=gen, dtype=torch.float64) for _ in range(num_views)]


def _reference(views: list[np.ndarray], invariance_weight: float) -> dict[str, float]:
    """The official multi-view loss written out in numpy float64, one view and one column at a time."""
    num_views = len(views)
    batch, dim = views[0].shape
    normalized = []
    for z in views:
        zn = np.empty_like(z)
        for j in range(dim):
            zn[:, j] = z[:, j] / math.sqrt(sum(z[b, j] ** 2 for b in range(batch)))
        normalized.append(zn)
    mean_view = sum(normalized) / num_views
    regularizer, invariance = 0.0, 0.0
    for zn in normalized:
        gram = zn.T @ zn  # always the d x d side here
        gram = gram / np.trace(gram)
        regularizer += 2.0 * math.log(math.sqrt(float((gram**2).sum())))
        mse = float(((zn - mean_view) ** 2).sum()) / (batch * dim)
        invariance += num_views * dim * mse
    return {"regularizer": regularizer, "invariance": invariance, "loss": regularizer + invariance_weight * invariance}


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("num_views", [2, 4])
def test_matches_the_numpy_reference(batch: int, dim: int, num_views: int) -> None:
    views = _views(num_views, batch, dim, seed=batch * 10 + dim + num_views)
    expected = _reference([v.numpy() for v in views], invariance_weight=0.7)
    for path in ("auto", "feature", "sample"):
        out = frossl_loss(views, invariance_weight=0.7, path=path)
        for key in ("loss", "regularizer", "invariance"):
            assert out[key].item() == pytest.approx(expected[key], rel=1e-10, abs=1e-12), (path, key)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("num_views", [2, 3])
def test_paths_agree_in_value_and_gradient(batch: int, dim: int, num_views: int) -> None:
    views = _views(num_views, batch, dim, seed=7)
    results = {}
    for path in ("feature", "sample"):
        leaves = [v.clone().requires_grad_(True) for v in views]
        loss = frossl_loss(leaves, path=path)["loss"]
        results[path] = (loss.detach(), torch.autograd.grad(loss, leaves))
    assert _rel_err(results["sample"][0], results["feature"][0]) < 1e-8
    for gs, gf in zip(results["sample"][1], results["feature"][1]):
        assert _rel_err(gs, gf) < 1e-8


@pytest.mark.parametrize("path", ["feature", "sample"])
@pytest.mark.parametrize("num_views", [2, 3])
def test_gradcheck(path: str, num_views: int) -> None:
    views = [v.requires_grad_(True) for v in _views(num_views, 5, 4, seed=8)]
    assert torch.autograd.gradcheck(lambda *vs: frossl_loss(list(vs), 0.5, path=path)["loss"], tuple(views))


def test_two_views_reduce_to_the_squared_distance_of_normalized_views() -> None:
    z1, z2 = _views(2, 12, 5, seed=3)
    n1, n2 = z1 / z1.norm(dim=0), z2 / z2.norm(dim=0)
    out = frossl_pair_loss(z1, z2, invariance_weight=2.0)
    assert out["invariance"].item() == pytest.approx(((n1 - n2) ** 2).sum().item() / 12, rel=1e-12)
    assert torch.equal(out["loss"], frossl_loss([z1, z2], invariance_weight=2.0)["loss"])


def test_regularizer_is_the_sum_of_the_per_view_terms() -> None:
    views = _views(3, 9, 14, seed=4)
    total = sum(frossl_regularizer(v) for v in views)
    assert frossl_loss(views)["regularizer"].item() == pytest.approx(total.item(), rel=1e-12)
    for path in ("feature", "sample"):
        assert frossl_regularizer(views[0], path=path).item() == pytest.approx(frossl_regularizer(views[0]).item())


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(
    num_views=st.integers(2, 5),
    batch=st.integers(2, 10),
    dim=st.integers(1, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_view_and_batch_permutation_invariance(num_views: int, batch: int, dim: int, seed: int) -> None:
    views = _views(num_views, batch, dim, seed)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_views, generator=gen).tolist()
    rows = torch.randperm(batch, generator=gen)
    base = frossl_loss(views)
    reordered = frossl_loss([views[i] for i in order])
    permuted = frossl_loss([v[rows] for v in views])
    for key in base:
        assert reordered[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-10)
        assert permuted[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-10)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 10), dim=st.integers(1, 8), seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 100.0))
def test_invariant_to_positive_column_scaling(batch: int, dim: int, seed: int, scale: float) -> None:
    # columns are normalized over the batch: any positive per-column scale of a view cancels
    views = _views(2, batch, dim, seed)
    s = scale * (torch.rand(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.5)
    base = frossl_loss(views)["loss"].item()
    assert frossl_loss([views[0] * s, views[1]])["loss"].item() == pytest.approx(base, rel=1e-9, abs=1e-10)


@pytest.mark.parametrize(("batch", "dim"), [(64, 8), (4, 16)])
def test_flat_spectrum_and_identical_views_reach_the_minimum(batch: int, dim: int) -> None:
    if batch >= dim:  # orthonormal columns
        x = torch.randn(batch, dim, generator=torch.Generator().manual_seed(batch), dtype=torch.float64)
        z = torch.linalg.qr(x)[0]
    else:  # rows of a Hadamard matrix: orthogonal rows and columns of equal norm
        hadamard = torch.ones(1, 1, dtype=torch.float64)
        while hadamard.shape[0] < dim:
            hadamard = torch.kron(hadamard, torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64))
        z = hadamard[:batch]
    out = frossl_loss([z, z, z])
    assert out["regularizer"].item() == pytest.approx(-3 * math.log(min(batch, dim)), rel=1e-10)
    assert out["invariance"].item() == pytest.approx(0.0, abs=1e-20)


def test_collapsed_and_all_zero_views_are_finite() -> None:
    z = _views(1, 8, 5, seed=5)[0]
    constant = torch.full((8, 5), 0.3, dtype=torch.float64)
    assert frossl_regularizer(constant).item() == pytest.approx(0.0, abs=1e-12)  # rank 1: no entropy
    zeros = torch.zeros(8, 5, dtype=torch.float64, requires_grad=True)
    for path in ("feature", "sample"):
        out = frossl_loss([zeros, z], path=path)
        assert all(torch.isfinite(v) for v in out.values())
        assert frossl_regularizer(zeros, path=path).item() == 0.0
        (grad,) = torch.autograd.grad(out["loss"], zeros)
        assert torch.isfinite(grad).all()


def test_tiny_and_huge_inputs_stay_finite_in_float32() -> None:
    z = _views(1, 16, 32, seed=6)[0].float()
    for scale in (1e-30, 1e30):
        out = frossl_loss([z * scale, z * scale * 0.5 + 1e-3 * scale])
        assert all(torch.isfinite(v) for v in out.values()), scale


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    views = [v.float() for v in _views(2, 8, 32, seed=9)]
    reference = frossl_loss(views)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = frossl_loss(views)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in frossl_loss([v.bfloat16() for v in views]).values())
    assert frossl_loss([views[0].double(), views[1]])["loss"].dtype == torch.float64


@pytest.mark.parametrize(
    ("views", "kwargs", "name"),
    [
        (torch.ones(2, 4, 6), {}, "views"),  # a stacked tensor, not a sequence
        ((v for v in [torch.randn(4, 6)] * 2), {}, "views"),
        ([torch.randn(4, 6)], {}, "views"),
        ([], {}, "views"),
        ([torch.randn(4, 6), torch.randn(4, 7)], {}, r"views\[1\]"),
        ([torch.randn(4, 6), torch.randn(5, 6)], {}, r"views\[1\]"),
        ([torch.randn(4, 6), torch.randn(4, 6), torch.ones(4)], {}, r"views\[2\]"),
        ([torch.randn(1, 6), torch.randn(1, 6)], {}, r"views\[0\]"),
        ([torch.randn(4, 6), torch.full((4, 6), float("nan"))], {}, r"views\[1\]"),
        ([torch.ones(4, 6, dtype=torch.int32), torch.randn(4, 6)], {}, r"views\[0\]"),
        ([torch.randn(4, 6)] * 2, {"invariance_weight": -1.0}, "invariance_weight"),
        ([torch.randn(4, 6)] * 2, {"invariance_weight": "1"}, "invariance_weight"),
        ([torch.randn(4, 6)] * 2, {"path": "gram"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(views: object, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}:"):
        frossl_loss(views, **kwargs)  # type: ignore[arg-type]


def test_pair_and_regularizer_bad_input() -> None:
    with pytest.raises(ValueError, match=r"^z2:"):
        frossl_pair_loss(torch.randn(4, 6), torch.randn(4, 5))
    with pytest.raises(ValueError, match=r"^z:"):
        frossl_regularizer(torch.randn(6))
    with pytest.raises(ValueError, match=r"^path:"):
        frossl_regularizer(torch.randn(4, 6), path="both")


def test_docstring_examples_run() -> None:
    result = doctest.testmod(frossl_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

"""Tests of covssl/objectives/mmcr.py against independent float64 references."""

from __future__ import annotations

import doctest
import importlib
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.mmcr import mmcr_loss, nuclear_norm

mmcr_module = importlib.import_module("covssl.objectives.mmcr")

SHAPES = [(2, 3, 10), (4, 16, 6), (8, 5, 3), (3, 7, 7), (2, 2, 1)]  # (views, batch, dim)


def _views(num_views: int, batch: int, dim: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return [base + 0.6 * torch.randn(batch, dim, generator=gen, dtype=torch.float64) for _ in range(num_views)]


def _reference(views: list[np.ndarray], lambd: float) -> tuple[float, float, float]:
    """(loss, centroid norm, local norm) with numpy.linalg.svd and explicit loops over samples."""
    num_views, (batch, dim) = len(views), views[0].shape
    unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in views]
    centroids = np.zeros((batch, dim))
    local = 0.0
    for b in range(batch):
        z_b = np.stack([unit[v][b] for v in range(num_views)])  # (V, d)
        local += np.linalg.svd(z_b, compute_uv=False).sum()
        centroids[b] = z_b.mean(axis=0)
    centroid = np.linalg.svd(centroids, compute_uv=False).sum()
    local /= batch
    return lambd * local - centroid, centroid, local


def _as_numpy(views: list[torch.Tensor]) -> list[np.ndarray]:
    return [v.detach().numpy() for v in views]


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("num_views", "batch", "dim"), SHAPES)
@pytest.mark.parametrize("lambd", [0.0, 0.005, 0.7])
def test_matches_a_numpy_svd_reference(num_views: int, batch: int, dim: int, lambd: float) -> None:
    views = _views(num_views, batch, dim, seed=num_views * 100 + batch * 10 + dim)
    loss, centroid, local = _reference(_as_numpy(views), lambd)
    out = mmcr_loss(views, lambd=lambd)
    assert out["loss"].item() == pytest.approx(loss, rel=1e-10)
    assert out["centroid_nuclear_norm"].item() == pytest.approx(centroid, rel=1e-10)
    assert out["local_nuclear_norm"].item() == pytest.approx(local, rel=1e-10)


def test_gradcheck_in_a_generic_case() -> None:
    views = tuple(v.requires_grad_(True) for v in _views(3, 5, 4, seed=1))
    assert torch.autograd.gradcheck(lambda *v: mmcr_loss(list(v), lambd=0.3)["loss"], views)
    matrix = torch.randn(4, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(nuclear_norm, (matrix,))


def test_gradient_matches_central_differences_of_the_numpy_reference() -> None:
    views = _views(3, 4, 3, seed=5)
    leaves = [v.clone().requires_grad_(True) for v in views]
    grads = torch.autograd.grad(mmcr_loss(leaves, lambd=0.5)["loss"], leaves)
    arrays, h = _as_numpy(views), 1e-6
    for v, b, j in itertools.product(range(3), range(4), range(3)):
        up, down = [a.copy() for a in arrays], [a.copy() for a in arrays]
        up[v][b, j] += h
        down[v][b, j] -= h
        numeric = (_reference(up, 0.5)[0] - _reference(down, 0.5)[0]) / (2 * h)
        assert grads[v][b, j].item() == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_nuclear_norm_gradient_is_u_v_transpose_with_repeated_singular_values() -> None:
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    matrix = (2.0 * q[:, :3]).requires_grad_(True)  # (5, 3), singular values (2, 2, 2)
    value = nuclear_norm(matrix)
    (grad,) = torch.autograd.grad(value, matrix)
    assert value.item() == pytest.approx(6.0, rel=1e-12)
    torch.testing.assert_close(grad, q[:, :3], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- degenerate cases


def test_identical_views_give_rank_one_samples_with_a_zero_local_gradient() -> None:
    z = _views(1, 6, 4, seed=7)[0]
    leaves = [z.clone().requires_grad_(True) for _ in range(5)]
    out = mmcr_loss(leaves, lambd=1.0)
    assert out["local_nuclear_norm"].item() == pytest.approx(math.sqrt(5), rel=1e-12)  # ||1 x^T|| = sqrt(V)
    grads = torch.autograd.grad(out["local_nuclear_norm"], leaves)
    # ||Z_b||_* = sqrt(V) for every direction of the shared row: the minimum-norm subgradient
    # u1 v1^T is radial, and the row normalization removes it
    for grad in grads:
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=1e-12)
    grads = torch.autograd.grad(mmcr_loss(leaves, lambd=1.0)["loss"], leaves)
    for grad in grads[1:]:
        torch.testing.assert_close(grad, grads[0], rtol=0, atol=1e-12)  # no arbitrary push apart


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_collapsed_batches_and_zero_views_keep_finite_gradients(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(8)
    row = torch.randn(1, 6, generator=gen, dtype=dtype)
    cases = {
        "everything collapsed": [row.repeat(8, 1) for _ in range(3)],
        "collapsed centroids": [torch.randn(1, 6, generator=gen, dtype=dtype).repeat(8, 1) for _ in range(3)],
        "all zero": [torch.zeros(8, 6, dtype=dtype) for _ in range(3)],
        "nearly identical": [row.repeat(8, 1) + 1e-9 * torch.randn(8, 6, generator=gen, dtype=dtype) for _ in range(3)],
    }
    for name, views in cases.items():
        leaves = [v.clone().requires_grad_(True) for v in views]
        out = mmcr_loss(leaves, lambd=0.5)
        grads = torch.autograd.grad(out["loss"], leaves)
        assert all(torch.isfinite(v).all() for v in out.values()), name
        assert all(torch.isfinite(g).all() for g in grads), name
    collapsed = mmcr_loss([row.repeat(8, 1)] * 3)["centroid_nuclear_norm"].item()
    assert collapsed == pytest.approx(math.sqrt(8), rel=1e-5)  # C = 1 c^T with |c| = 1


def test_identical_orthonormal_views_reach_the_maximal_centroid_norm() -> None:
    q, _ = torch.linalg.qr(torch.randn(9, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    views = [3.0 * q[:6]] * 4  # B = 6 orthogonal rows, d = 9: ||C||_* = B, the maximum for B <= d
    out = mmcr_loss(views, lambd=0.1)
    assert out["centroid_nuclear_norm"].item() == pytest.approx(6.0, rel=1e-12)
    assert out["loss"].item() == pytest.approx(0.1 * 2.0 - 6.0, rel=1e-12)  # sqrt(V) = 2 per sample


# ---------------------------------------------------------------- invariances


@settings(max_examples=20, deadline=None)
@given(
    num_views=st.integers(2, 5),
    batch=st.integers(2, 8),
    dim=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_invariant_to_rotations_sample_and_view_permutations_and_row_scales(
    num_views: int, batch: int, dim: int, seed: int
) -> None:
    views = _views(num_views, batch, dim, seed)
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    perm = torch.randperm(batch, generator=gen)
    scales = [torch.rand(batch, 1, generator=gen, dtype=torch.float64) + 0.5 for _ in views]
    base = mmcr_loss(views, lambd=0.3)
    variants = [
        mmcr_loss([v @ q for v in views], lambd=0.3),  # z -> z Q
        mmcr_loss([v[perm] for v in views], lambd=0.3),
        mmcr_loss(views[::-1], lambd=0.3),
        mmcr_loss([v * s for v, s in zip(views, scales)], lambd=0.3),
    ]
    for out, key in itertools.product(variants, base):
        assert out[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-10)


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    views = [v.float() for v in _views(3, 8, 16, seed=9)]
    reference = mmcr_loss(views, lambd=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = mmcr_loss(views, lambd=0.1)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in mmcr_loss([v.half() for v in views]).values())
    assert mmcr_loss([v.double() for v in views])["loss"].dtype == torch.float64


BAD_INPUT = [
    ("views", torch.randn(2, 4, 6)),  # a tensor, not a sequence
    ("views", [torch.randn(4, 6)]),  # one view
    ("views", []),
    ("views", [torch.randn(4, 6), torch.randn(5, 6)]),
    ("views", [torch.randn(4, 6), torch.randn(4, 5)]),
    ("views", [torch.randn(4, 6), torch.ones(4, 6).int()]),
    ("views", [torch.randn(1, 6), torch.randn(1, 6)]),
    ("views", [torch.randn(4, 6), torch.full((4, 6), float("inf"))]),
    *[("lambd", v) for v in (-0.1, "0", float("nan"), True)],
]


@pytest.mark.parametrize(("name", "value"), BAD_INPUT)
def test_bad_input_raises_value_error_naming_the_argument(name: str, value: object) -> None:
    args = {"views": [torch.randn(4, 6), torch.randn(4, 6)], name: value}
    with pytest.raises(ValueError, match=rf"^{name}(\[\d\])?:"):
        mmcr_loss(**args)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(mmcr_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

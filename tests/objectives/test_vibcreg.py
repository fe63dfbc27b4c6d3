"""Tests of covssl/objectives/vibcreg.py against float64 loop references and the official formulas."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.vibcreg import correlation_penalty, vibcreg_loss
from covssl.objectives.vicreg import covariance_penalty, vicreg_loss

vibcreg_module = importlib.import_module("covssl.objectives.vibcreg")

# (batch, dim) on both sides of B = d, so "auto" takes each path.
SHAPES = [(3, 10), (8, 32), (16, 6), (7, 7), (40, 12)]


def _views(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=gen, dtype=torch.float64) * 3 + 0.1
    mix = torch.eye(dim, dtype=torch.float64) + 0.4 * torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    z1 = (torch.randn(batch, dim, generator=gen, dtype=torch.float64) @ mix) * scales - 1.0
    z2 = 0.7 * z1 + 0.5 * torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return z1, z2


def _reference(z1: np.ndarray, z2: np.ndarray, gamma: float, eps: float) -> tuple[float, float, float]:
    """(invariance, variance, covariance) from the paper's definitions with explicit loops."""
    batch, dim = z1.shape
    invariance = sum((z1[b, j] - z2[b, j]) ** 2 for b in range(batch) for j in range(dim)) / (batch * dim)

    def hinge(z: np.ndarray) -> float:
        total = 0.0
        for j in range(dim):
            mean = sum(z[:, j]) / batch
            var = sum((z[b, j] - mean) ** 2 for b in range(batch)) / (batch - 1)
            total += max(0.0, gamma - math.sqrt(var + eps))
        return total / dim

    def correlation(z: np.ndarray) -> float:
        zc = z - z.mean(axis=0)
        norms = [math.sqrt(sum(zc[b, j] ** 2 for b in range(batch))) for j in range(dim)]
        total = 0.0
        for i in range(dim):
            for j in range(dim):
                if i != j:
                    r_ij = sum(zc[b, i] * zc[b, j] for b in range(batch)) / (norms[i] * norms[j])
                    total += r_ij**2
        return total / dim**2

    return invariance, hinge(z1) + hinge(z2), correlation(z1) + correlation(z2)


def _official(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The official forward (vibcreg/losses/*.py), written out: MSE + summed FcE + (R ** 2).mean()."""

    def cov(z: torch.Tensor) -> torch.Tensor:
        zn = F.normalize(z - z.mean(dim=0), p=2, dim=0)
        r = zn.T @ zn
        r = r - torch.diag(torch.diagonal(r))  # fill_diagonal_(0) without an in-place op
        return (r**2).mean()

    def var(z: torch.Tensor) -> torch.Tensor:
        return torch.mean(torch.relu(1.0 - torch.sqrt(z.var(dim=0) + 1e-4)))

    return 25.0 * F.mse_loss(z1, z2) + 25.0 * (var(z1) + var(z2)) + 200.0 * (cov(z1) + cov(z2))


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize(("gamma", "eps"), [(1.0, 1e-4), (2.5, 1e-2)])
def test_matches_an_explicit_loop_reference(batch: int, dim: int, gamma: float, eps: float) -> None:
    z1, z2 = _views(batch, dim, seed=batch * 10 + dim)
    inv, var, cov = _reference(z1.numpy(), z2.numpy(), gamma, eps)
    for path in ("auto", "feature", "sample"):
        out = vibcreg_loss(z1, z2, sim_weight=2.0, var_weight=3.0, cov_weight=5.0, eps=eps, gamma=gamma, path=path)
        assert out["invariance"].item() == pytest.approx(inv, rel=1e-10)
        assert out["variance"].item() == pytest.approx(var, rel=1e-10, abs=1e-14)
        assert out["covariance"].item() == pytest.approx(cov, rel=1e-10)
        assert out["loss"].item() == pytest.approx(2 * inv + 3 * var + 5 * cov, rel=1e-10)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_matches_the_official_forward_in_value_and_gradient(batch: int, dim: int) -> None:
    z1, z2 = _views(batch, dim, seed=batch + dim)
    r1, r2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    ref = _official(r1, r2)
    ref_grads = torch.autograd.grad(ref, (r1, r2))
    l1, l2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = vibcreg_loss(l1, l2)["loss"]  # defaults: 25 / 25 / 200, eps 1e-4, gamma 1
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
        out = vibcreg_loss(*leaves, path=path)
        results[path] = (out["covariance"].detach(), torch.autograd.grad(out["loss"], leaves))
    assert _rel_err(results["sample"][0], results["feature"][0]) < 1e-8
    for gs, gf in zip(results["sample"][1], results["feature"][1]):
        assert _rel_err(gs, gf) < 1e-8


@pytest.mark.parametrize("path", ["feature", "sample"])
def test_gradcheck(path: str) -> None:
    z1, z2 = _views(5, 4, seed=8)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    fn = lambda x, y: vibcreg_loss(x, y, cov_weight=3.0, gamma=4.0, path=path)["loss"]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (z1, z2))


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(3, 12),
    dim=st.integers(1, 10),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.01, 100.0),
    shift=st.floats(-10.0, 10.0),
)
def test_correlation_term_is_invariant_to_per_dimension_affine_maps(
    batch: int, dim: int, seed: int, scale: float, shift: float
) -> None:
    z, _ = _views(batch, dim, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    signs = torch.where(torch.rand(dim, generator=gen) < 0.5, -1.0, 1.0).double()
    s = scale * signs * (torch.rand(dim, generator=gen, dtype=torch.float64) + 0.5)
    t = shift * torch.randn(dim, generator=gen, dtype=torch.float64)
    for path in ("feature", "sample"):
        base = correlation_penalty(z, path=path).item()
        assert correlation_penalty(z * s + t, path=path).item() == pytest.approx(base, rel=1e-8, abs=1e-12)


def test_unlike_vicreg_the_covariance_term_cannot_be_lowered_by_shrinking_z() -> None:
    z1, z2 = _views(32, 8, seed=3)
    assert covariance_penalty(0.1 * z1).item() == pytest.approx(1e-4 * covariance_penalty(z1).item(), rel=1e-9)
    shrunk = vibcreg_loss(0.1 * z1, 0.1 * z2)["covariance"].item()
    assert shrunk == pytest.approx(vibcreg_loss(z1, z2)["covariance"].item(), rel=1e-9)


@pytest.mark.parametrize("dim", [1, 2, 5, 9])
def test_bounds_of_the_correlation_term(dim: int) -> None:
    gen = torch.Generator().manual_seed(dim)
    feature = torch.randn(16, 1, generator=gen, dtype=torch.float64)
    signs = torch.tensor([(-1.0) ** j for j in range(dim)], dtype=torch.float64)
    copies = feature * signs * torch.arange(1, dim + 1, dtype=torch.float64)  # all |R_ij| = 1
    assert correlation_penalty(copies).item() == pytest.approx((dim - 1) / dim, rel=1e-12)
    x = torch.randn(16, dim, generator=gen, dtype=torch.float64)
    q, _ = torch.linalg.qr(x - x.mean(dim=0))  # centred orthonormal columns: R = I
    decorrelated = q * torch.arange(1, dim + 1, dtype=torch.float64) + 3
    for path in ("feature", "sample"):
        assert correlation_penalty(decorrelated, path=path).item() == pytest.approx(0.0, abs=1e-14)


def test_constant_columns_count_as_uncorrelated_and_keep_gradients_finite() -> None:
    z1, z2 = _views(10, 4, seed=6)
    z1 = torch.cat([z1, torch.full((10, 2), 0.5, dtype=torch.float64)], dim=1).requires_grad_(True)
    z2 = torch.cat([z2, torch.zeros(10, 2, dtype=torch.float64)], dim=1)
    ref = _reference(z1.detach()[:, :4].numpy(), z2[:, :4].numpy(), 1.0, 1e-4)[2] * 16 / 36  # d^2: 16 -> 36
    for path in ("feature", "sample"):
        out = vibcreg_loss(z1, z2, path=path)
        assert out["covariance"].item() == pytest.approx(ref, rel=1e-10)
        (grad,) = torch.autograd.grad(out["loss"], z1)
        assert bool(torch.isfinite(grad).all())


def test_relation_to_vicreg_terms() -> None:
    z1, z2 = _views(24, 6, seed=5)
    vic = vicreg_loss(z1, z2, gamma=2.0)
    vib = vibcreg_loss(z1, z2, gamma=2.0)
    assert vib["invariance"].item() == vic["invariance"].item()  # the same MSE
    assert vib["variance"].item() == pytest.approx(2 * vic["variance"].item(), rel=1e-12)  # sum, not mean
    collapsed = torch.zeros(8, 4)
    assert vibcreg_loss(collapsed, collapsed)["variance"].item() == pytest.approx(2 * (1 - 1e-2), rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 12), dim=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_batch_permutation_and_view_swap_invariance(batch: int, dim: int, seed: int) -> None:
    z1, z2 = _views(batch, dim, seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    base = vibcreg_loss(z1, z2)
    for other in (vibcreg_loss(z1[perm], z2[perm]), vibcreg_loss(z2, z1)):
        for key in base:
            assert other[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-10)


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z1, z2 = (v.float() for v in _views(8, 32, seed=9))
    reference = vibcreg_loss(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = vibcreg_loss(z1, z2)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in vibcreg_loss(z1.half(), z2.half()).values())
    assert vibcreg_loss(z1.double(), z2.double())["loss"].dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"z1": torch.ones(4)}, "z1"),
        ({"z2": torch.ones(2, 3, 4)}, "z2"),
        ({"z2": torch.ones(4, 7)}, "z2"),
        ({"z1": torch.ones(1, 6), "z2": torch.ones(1, 6)}, "z1"),
        ({"z1": torch.full((4, 6), float("nan"))}, "z1"),
        ({"z2": torch.full((4, 6), float("inf"))}, "z2"),
        ({"z2": torch.ones(4, 6, dtype=torch.int32)}, "z2"),
        ({"sim_weight": -1.0}, "sim_weight"),
        ({"var_weight": "25"}, "var_weight"),
        ({"cov_weight": float("inf")}, "cov_weight"),
        ({"eps": 0.0}, "eps"),
        ({"gamma": -1.0}, "gamma"),
        ({"path": "gram"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"z1": torch.randn(4, 6), "z2": torch.randn(4, 6)} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        vibcreg_loss(**args)


def test_correlation_penalty_checks_its_input() -> None:
    with pytest.raises(ValueError, match=r"^z:"):
        correlation_penalty(torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"^path:"):
        correlation_penalty(torch.ones(4, 4), path="both")  # type: ignore[arg-type]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(vibcreg_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

"""Tests of covssl/objectives/vicreg.py against a float64 re-implementation of the official forward."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.vicreg import covariance_penalty, variance_hinge, vicreg_loss

# The package re-exports functions named like their modules, so get the module itself this way.
vicreg_module = importlib.import_module("covssl.objectives.vicreg")

# (batch, dim) on both sides of B = d, so "auto" takes each path.
SHAPES = [(3, 10), (8, 32), (16, 6), (7, 7), (40, 12)]


def _views(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two correlated float64 views whose per-dimension stds straddle gamma = 1 (hinge partly active)."""
    gen = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=gen, dtype=torch.float64) * 1.5 + 0.1  # scales in [0.1, 1.6]
    mix = torch.randn(dim, dim, generator=gen, dtype=torch.float64) / math.sqrt(dim)
    mixing = torch.eye(dim, dtype=torch.float64) + mix  # (d, d): correlates the dimensions
    base = torch.randn(batch, dim, generator=gen, dtype=torch.float64) @ mixing  # (B, d) @ (d, d) -> (B, d)
    z1 = base * scales + 0.5
    z2 = z1 + 0.3 * torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return z1, z2


def _official_vicreg(x: torch.Tensor, y: torch.Tensor, sim: float, std: float, cov: float) -> dict[str, float]:
    """The official VICReg forward (facebookresearch/vicreg), re-typed in float64 from the paper's equations."""
    x, y = x.double(), y.double()
    batch, dim = x.shape
    repr_loss = ((x - y) ** 2).mean()
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt((x**2).sum(dim=0) / (batch - 1) + 1e-4)
    std_y = torch.sqrt((y**2).sum(dim=0) / (batch - 1) + 1e-4)
    std_loss = torch.clamp(1 - std_x, min=0).mean() / 2 + torch.clamp(1 - std_y, min=0).mean() / 2
    cov_x = x.T @ x / (batch - 1)
    cov_y = y.T @ y / (batch - 1)
    off = ~torch.eye(dim, dtype=torch.bool)
    cov_loss = cov_x[off].pow(2).sum() / dim + cov_y[off].pow(2).sum() / dim
    loss = sim * repr_loss + std * std_loss + cov * cov_loss
    return {"loss": loss, "invariance": repr_loss, "variance": std_loss, "covariance": cov_loss}


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


def _orthogonal(dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    return q


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize(("sim", "std", "cov"), [(25.0, 25.0, 1.0), (1.0, 0.5, 3.0)])
def test_vicreg_loss_matches_the_official_forward(batch: int, dim: int, sim: float, std: float, cov: float) -> None:
    z1, z2 = _views(batch, dim, seed=batch * 100 + dim)
    out = vicreg_loss(z1, z2, sim_weight=sim, var_weight=std, cov_weight=cov)
    expected = _official_vicreg(z1, z2, sim, std, cov)
    assert set(out) == set(expected)
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value.item(), rel=1e-10, abs=1e-14), key
    assert 0 < expected["variance"].item() < 1  # the hinge is active on some dimensions only


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_vicreg_gradient_matches_the_official_forward(batch: int, dim: int) -> None:
    z1, z2 = _views(batch, dim, seed=batch + dim)
    leaves = [z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)]
    grads = torch.autograd.grad(vicreg_loss(*leaves)["loss"], leaves)
    ref_leaves = [z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)]
    ref_grads = torch.autograd.grad(_official_vicreg(*ref_leaves, 25.0, 25.0, 1.0)["loss"], ref_leaves)
    for g, r in zip(grads, ref_grads):
        assert _rel_err(g, r) < 1e-10


@pytest.mark.parametrize(("gamma", "eps", "squared"), [(1.0, 1e-4, False), (2.0, 1e-2, False), (1.5, 1e-4, True)])
def test_variance_hinge_matches_an_explicit_loop(gamma: float, eps: float, squared: bool) -> None:
    z, _ = _views(9, 5, seed=1)
    zn = z.numpy()
    total = 0.0
    for j in range(zn.shape[1]):
        col = zn[:, j]
        var = sum((v - col.mean()) ** 2 for v in col) / (len(col) - 1)
        hinge = max(0.0, gamma - math.sqrt(var + eps))
        total += hinge**2 if squared else hinge
    assert variance_hinge(z, gamma, eps, squared).item() == pytest.approx(total / zn.shape[1], rel=1e-12)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_covariance_penalty_matches_numpy_with_an_offdiagonal_mask(batch: int, dim: int) -> None:
    z, _ = _views(batch, dim, seed=3)
    c = np.cov(z.numpy(), rowvar=False)
    expected = np.sum((c * (1 - np.eye(dim))) ** 2) / dim
    for path in ("auto", "feature", "sample"):
        assert covariance_penalty(z, path).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_covariance_penalty_paths_agree_in_value_and_gradient(batch: int, dim: int) -> None:
    z, _ = _views(batch, dim, seed=4)
    results = {}
    for path in ("feature", "sample"):
        leaf = z.clone().requires_grad_(True)
        value = covariance_penalty(leaf, path)
        results[path] = (value.detach(), torch.autograd.grad(value, leaf)[0])
    assert _rel_err(results["sample"][0], results["feature"][0]) < 1e-8
    assert _rel_err(results["sample"][1], results["feature"][1]) < 1e-8


def test_gradcheck() -> None:
    z1, z2 = _views(5, 4, seed=5)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: variance_hinge(x), (z1,))
    assert torch.autograd.gradcheck(lambda x: variance_hinge(x, squared=True), (z1,))
    for path in ("feature", "sample"):
        assert torch.autograd.gradcheck(lambda x, p=path: covariance_penalty(x, p), (z1,))
        assert torch.autograd.gradcheck(lambda x, y, p=path: vicreg_loss(x, y, path=p)["loss"], (z1, z2))


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 10), dim=st.integers(2, 10), seed=st.integers(0, 2**31 - 1))
def test_covariance_frobenius_norm_is_rotation_invariant(batch: int, dim: int, seed: int) -> None:
    # ||C||_F^2 = d * penalty + sum_i Var_i^2 is invariant under z -> z Q; the off-diagonal part alone is not.
    z, _ = _views(batch, dim, seed)
    q = _orthogonal(dim, seed + 1)

    def frobenius(x: torch.Tensor) -> float:
        variances = x.var(dim=0)  # (d,), unbiased: the diagonal of C
        return dim * covariance_penalty(x).item() + variances.pow(2).sum().item()

    assert frobenius(z @ q) == pytest.approx(frobenius(z), rel=1e-9)


def test_covariance_penalty_alone_is_not_rotation_invariant() -> None:
    # Uncorrelated, different variances: penalty 0. Rotating by 45 degrees mixes them: penalty > 0.
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=torch.float64)
    assert covariance_penalty(z).item() == pytest.approx(0.0, abs=1e-15)
    q = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64) / math.sqrt(2)
    rotated = covariance_penalty(z @ q).item()
    # C = diag(2/3, 8/3) -> off-diagonal (8/3 - 2/3)/2 = 1 after rotation; (1/d) * 2 * 1^2 = 1
    assert rotated == pytest.approx(1.0, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 12), dim=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_batch_permutation_and_view_swap_invariance(batch: int, dim: int, seed: int) -> None:
    z1, z2 = _views(batch, dim, seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    base = vicreg_loss(z1, z2)
    permuted = vicreg_loss(z1[perm], z2[perm])
    swapped = vicreg_loss(z2, z1)
    # abs: with d = 1 the penalty is ||C||_F^2 - C_11^2 = 0 up to ~1e-14 of cancellation.
    for key in base:
        assert permuted[key].item() == pytest.approx(base[key].item(), rel=1e-10, abs=1e-10)
        assert swapped[key].item() == pytest.approx(base[key].item(), rel=1e-10, abs=1e-10)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 12), dim=st.integers(1, 8), seed=st.integers(0, 2**31 - 1), gamma=st.floats(0.1, 5.0))
def test_collapsed_embeddings_give_the_worst_variance_hinge(batch: int, dim: int, seed: int, gamma: float) -> None:
    z, _ = _views(batch, dim, seed)
    worst = gamma - math.sqrt(1e-4)
    constant = torch.full((batch, dim), 3.7, dtype=torch.float64)
    assert variance_hinge(constant, gamma).item() == pytest.approx(worst, rel=1e-12)
    assert variance_hinge(constant, gamma, squared=True).item() == pytest.approx(worst**2, rel=1e-12)
    assert variance_hinge(z, gamma).item() <= worst + 1e-12
    assert covariance_penalty(constant).item() == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize(("batch", "dim"), [(16, 4), (51, 50), (64, 10)])
def test_whitened_embeddings_give_the_best_values(batch: int, dim: int) -> None:
    gen = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    q, _ = torch.linalg.qr(x - x.mean(dim=0))  # centered orthonormal columns
    z = q * math.sqrt(batch - 1) + 2.0  # unbiased covariance exactly I
    assert variance_hinge(z).item() == 0.0
    assert covariance_penalty(z).item() == pytest.approx(0.0, abs=1e-12)  # ||C||_F^2 - sum C_ii^2 cancels to ~1e-16
    out = vicreg_loss(z, z)
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z1, z2 = (v.float() for v in _views(8, 32, seed=6))
    reference = vicreg_loss(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = vicreg_loss(z1, z2)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert under_autocast[key].item() == pytest.approx(reference[key].item(), rel=1e-6)
    from_bf16 = vicreg_loss(z1.bfloat16(), z2.bfloat16())
    assert all(v.dtype == torch.float32 for v in from_bf16.values())
    assert covariance_penalty(z1.double()).dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"z1": torch.ones(4)}, "z1"),
        ({"z1": torch.ones(2, 3, 4)}, "z1"),
        ({"z2": torch.ones(5, 6)}, "z2"),
        ({"z1": torch.ones(1, 6), "z2": torch.ones(1, 6)}, "z1"),
        ({"z2": torch.full((4, 6), float("nan"))}, "z2"),
        ({"z1": torch.full((4, 6), float("inf"))}, "z1"),
        ({"z1": torch.ones(4, 6, dtype=torch.int64)}, "z1"),
        ({"z1": [[1.0, 2.0], [3.0, 4.0]]}, "z1"),
        ({"sim_weight": -1.0}, "sim_weight"),
        ({"var_weight": float("nan")}, "var_weight"),
        ({"cov_weight": -0.1}, "cov_weight"),
        ({"gamma": 0.0}, "gamma"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -1e-4}, "eps"),
        ({"path": "diagonal"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"z1": torch.randn(4, 6), "z2": torch.randn(4, 6)} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        vicreg_loss(**args)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: variance_hinge(torch.ones(1, 3)), "z"),
        (lambda: variance_hinge(torch.ones(4, 3), gamma=-1.0), "gamma"),
        (lambda: variance_hinge(torch.ones(4, 3), eps=0), "eps"),
        (lambda: covariance_penalty(torch.ones(4, 3, dtype=torch.int32)), "z"),
        (lambda: covariance_penalty(torch.ones(4, 3), path="gram"), "path"),
    ],
)
def test_term_functions_validate_their_input(call, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()


def test_docstring_examples_run() -> None:
    result = doctest.testmod(vicreg_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

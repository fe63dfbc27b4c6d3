"""Tests of covssl/objectives/spectral_contrastive.py against float64 loop and mask-form references."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.spectral_contrastive import spectral_contrastive_loss

spectral_module = importlib.import_module("covssl.objectives.spectral_contrastive")

SHAPES = [(2, 3), (5, 4), (8, 32), (16, 6), (7, 7)]


def _views(batch: int, dim: int, seed: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=gen, dtype=torch.float64) * scale / math.sqrt(dim)
    # row norms spread over a factor ~4, so a mid-range mu rescales some rows and not others
    z1 = z1 * torch.linspace(0.5, 2.0, batch, dtype=torch.float64)[:, None]
    z2 = z1 + 0.3 * scale / math.sqrt(dim) * torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return z1, z2


def _loop_reference(z1: np.ndarray, z2: np.ndarray, mu: float) -> dict[str, float]:
    """The loss with explicit loops over rows and pairs, in float64."""
    batch = z1.shape[0]

    def rescaled(z: np.ndarray) -> list[np.ndarray]:
        rows = []
        for row in z:
            norm = math.sqrt(float(row @ row))
            rows.append(row if norm < math.sqrt(mu) else row / norm * math.sqrt(mu))
        return rows

    a, b = rescaled(z1), rescaled(z2)
    attraction = -2.0 * sum(float(a[i] @ b[i]) for i in range(batch)) / batch / mu
    repulsion = 0.0
    for i in range(batch):
        for j in range(batch):
            if i != j:
                repulsion += float(a[i] @ b[j]) ** 2
    repulsion /= batch * (batch - 1) * mu
    return {"attraction": attraction, "repulsion": repulsion, "loss": attraction + repulsion}


def _mask_form(z1: torch.Tensor, z2: torch.Tensor, mu: float) -> torch.Tensor:
    """The loss in the official code's form: a keep/normalize mask, means over B*d and B*B entries."""
    views = []
    for z in (z1, z2):
        keep = (z.norm(dim=1) < math.sqrt(mu)).to(z.dtype)[:, None]
        views.append(keep * z + (1 - keep) * torch.nn.functional.normalize(z, dim=1) * math.sqrt(mu))
    a, b = views
    batch, dim = a.shape
    part1 = -2 * (a * b).mean() * dim
    square = (a @ b.T) ** 2
    part2 = (torch.triu(square, diagonal=1) + torch.tril(square, diagonal=-1)).mean() * batch / (batch - 1)
    return (part1 + part2) / mu


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


# mu = 100: no row is rescaled; mu = 1e-3: every row is; mu = 1: some are
REGIMES = [100.0, 1e-3, 1.0]


def test_the_regimes_are_what_they_claim() -> None:
    z1, _ = _views(16, 6, seed=0)
    norms = z1.norm(dim=1)
    assert bool((norms < math.sqrt(100.0)).all()) and bool((norms > math.sqrt(1e-3)).all())
    assert 0 < int((norms > 1.0).sum()) < 16


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("mu", REGIMES)
def test_matches_the_loop_reference(batch: int, dim: int, mu: float) -> None:
    z1, z2 = _views(batch, dim, seed=batch * 10 + dim)
    expected = _loop_reference(z1.numpy(), z2.numpy(), mu)
    out = spectral_contrastive_loss(z1, z2, mu=mu)
    for key in ("loss", "attraction", "repulsion"):
        assert out[key].item() == pytest.approx(expected[key], rel=1e-10, abs=1e-14), key


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("mu", REGIMES)
def test_matches_the_mask_form_in_value_and_gradient(batch: int, dim: int, mu: float) -> None:
    z1, z2 = _views(batch, dim, seed=batch + dim)
    r1, r2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    ref = _mask_form(r1, r2, mu)
    ref_grads = torch.autograd.grad(ref, (r1, r2))
    l1, l2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = spectral_contrastive_loss(l1, l2, mu=mu)["loss"]
    grads = torch.autograd.grad(loss, (l1, l2))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    for g, r in zip(grads, ref_grads):
        assert _rel_err(g, r) < 1e-9


@pytest.mark.parametrize("mu", REGIMES)
def test_gradcheck(mu: float) -> None:
    z1, z2 = _views(6, 4, seed=8)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: spectral_contrastive_loss(x, y, mu=mu)["loss"], (z1, z2))


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(2, 12),
    dim=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    mu=st.sampled_from(REGIMES),
)
def test_view_swap_and_batch_permutation_invariance(batch: int, dim: int, seed: int, mu: float) -> None:
    z1, z2 = _views(batch, dim, seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    base = spectral_contrastive_loss(z1, z2, mu=mu)
    swapped = spectral_contrastive_loss(z2, z1, mu=mu)  # z1 z2^T -> its transpose
    permuted = spectral_contrastive_loss(z1[perm], z2[perm], mu=mu)
    for key in base:
        assert swapped[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-12)
        assert permuted[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 10), dim=st.integers(1, 8), seed=st.integers(0, 2**31 - 1), scale=st.floats(1.0, 1e3))
def test_rows_outside_the_ball_only_count_by_direction(batch: int, dim: int, seed: int, scale: float) -> None:
    z1, z2 = (0.5 * torch.nn.functional.normalize(z, dim=1) for z in _views(batch, dim, seed))
    mu = 1e-2  # every row (norm 0.5, then more) is outside the ball of radius 0.1
    base = spectral_contrastive_loss(z1, z2, mu=mu)["loss"].item()
    assert spectral_contrastive_loss(z1 * scale, z2, mu=mu)["loss"].item() == pytest.approx(base, rel=1e-9)


@pytest.mark.parametrize(("radius", "mu"), [(0.5, 1.0), (1.0, 1.0), (3.0, 10.0), (5.0, 4.0)])
def test_collapsed_views(radius: float, mu: float) -> None:
    direction = torch.nn.functional.normalize(torch.randn(7, dtype=torch.float64), dim=0)
    z = (radius * direction).expand(12, 7)
    r2 = min(radius**2, mu)  # rows beyond sqrt(mu) are pulled back onto the sphere
    out = spectral_contrastive_loss(z, z, mu=mu)
    assert out["attraction"].item() == pytest.approx(-2 * r2 / mu, rel=1e-12)
    assert out["repulsion"].item() == pytest.approx(r2**2 / mu, rel=1e-12)


def test_orthogonal_rows_have_no_repulsion() -> None:
    z = torch.eye(6, dtype=torch.float64)[:4] * 0.8  # orthogonal rows inside the unit ball
    out = spectral_contrastive_loss(z, z)
    assert out["repulsion"].item() == 0.0
    assert out["loss"].item() == pytest.approx(-2 * 0.64, rel=1e-12)


def test_zero_rows_give_finite_values_and_gradients() -> None:
    z1, z2 = (z.clone() for z in _views(6, 5, seed=3))
    z1[2] = 0.0
    z2[4] = 0.0
    z1.requires_grad_(True)
    for mu in (1e-3, 1.0):
        for other in (z2, torch.zeros_like(z2)):
            loss = spectral_contrastive_loss(z1, other, mu=mu)["loss"]
            (grad,) = torch.autograd.grad(loss, z1)
            assert torch.isfinite(loss) and torch.isfinite(grad).all()


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z1, z2 = (v.float() for v in _views(8, 32, seed=9))
    reference = spectral_contrastive_loss(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = spectral_contrastive_loss(z1, z2)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in spectral_contrastive_loss(z1.half(), z2.half()).values())
    assert spectral_contrastive_loss(z1.double(), z2.double())["loss"].dtype == torch.float64
    with pytest.raises(ValueError, match=r"z2: expected the same dtype as z1 \(torch.float64\), got torch.float32"):
        spectral_contrastive_loss(z1.double(), z2)  # mixed dtypes are refused, naming the argument


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"z1": torch.ones(4)}, "z1"),
        ({"z2": torch.ones(2, 3, 4)}, "z2"),
        ({"z2": torch.ones(4, 7)}, "z2"),
        ({"z1": torch.ones(1, 6), "z2": torch.ones(1, 6)}, "z1"),
        ({"z1": torch.full((4, 6), float("nan"))}, "z1"),
        ({"z2": torch.full((4, 6), float("inf"))}, "z2"),
        ({"z2": torch.ones(4, 6, dtype=torch.int64)}, "z2"),
        ({"mu": 0.0}, "mu"),
        ({"mu": -1.0}, "mu"),
        ({"mu": float("inf")}, "mu"),
        ({"mu": "1"}, "mu"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"z1": torch.randn(4, 6), "z2": torch.randn(4, 6)} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        spectral_contrastive_loss(**args)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(spectral_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

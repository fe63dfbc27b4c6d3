"""InfoNCE / NT-Xent against an explicit per-anchor float64 loop (Chen et al. 2020)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.info_nce import info_nce_loss


def reference_nt_xent(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """l_i = -log(exp(s_pos) / sum_{k != i} exp(s_ik)) averaged over the 2B anchors, float64."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    n, batch = z.shape[0], z1.shape[0]
    zn = [row / math.sqrt(sum(x * x for x in row)) for row in z]
    total = 0.0
    for i in range(n):
        pos = (i + batch) % n
        sims = {k: float(np.dot(zn[i], zn[k])) / tau for k in range(n)}
        denominator = sum(math.exp(sims[k]) for k in range(n) if k != i)
        total += -math.log(math.exp(sims[pos]) / denominator)
    return total / n


def _pair(seed: int, batch: int, dim: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=gen, dtype=dtype)
    z2 = z1 + 0.5 * torch.randn(batch, dim, generator=gen, dtype=dtype)  # correlated views
    return z1, z2


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(2, 6),
    dim=st.integers(1, 6),
    tau=st.floats(0.05, 2.0),
)
def test_matches_per_anchor_loop(seed: int, batch: int, dim: int, tau: float) -> None:
    z1, z2 = _pair(seed, batch, dim)
    got = info_nce_loss(z1, z2, temperature=tau).item()
    assert got == pytest.approx(reference_nt_xent(z1.numpy(), z2.numpy(), tau), rel=1e-10, abs=1e-10)


def test_float32_matches_reference() -> None:
    z1, z2 = _pair(0, 16, 8, torch.float32)
    got = info_nce_loss(z1, z2, temperature=0.1)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(reference_nt_xent(z1.double().numpy(), z2.double().numpy(), 0.1), rel=1e-5)


def test_gradcheck() -> None:
    z1, z2 = _pair(1, 4, 3)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: info_nce_loss(a, b, temperature=0.3), (z1, z2))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(2, 8), dim=st.integers(2, 6))
def test_invariant_to_joint_permutation_and_row_scaling(seed: int, batch: int, dim: int) -> None:
    z1, z2 = _pair(seed, batch, dim)
    gen = torch.Generator().manual_seed(seed + 1)
    base = info_nce_loss(z1, z2)
    perm = torch.randperm(batch, generator=gen)
    assert info_nce_loss(z1[perm], z2[perm]).item() == pytest.approx(base.item(), rel=1e-10)
    # Positive per-row scales: the rows are l2-normalized, so only directions matter.
    s1 = torch.rand(batch, 1, generator=gen, dtype=torch.float64) * 10 + 0.1
    s2 = torch.rand(batch, 1, generator=gen, dtype=torch.float64) * 10 + 0.1
    assert info_nce_loss(s1 * z1, s2 * z2).item() == pytest.approx(base.item(), rel=1e-10)
    # Both views are anchors: swapping them leaves the loss unchanged.
    assert info_nce_loss(z2, z1).item() == pytest.approx(base.item(), rel=1e-10)


def test_permuting_one_view_only_changes_the_loss() -> None:
    """The positive is the *matching* row: breaking the pairing must raise the loss."""
    z1, z2 = _pair(2, 8, 16)
    assert info_nce_loss(z1, z2.roll(1, dims=0)) > info_nce_loss(z1, z2) + 0.5


def test_collapse_gives_log_of_2b_minus_1() -> None:
    z = torch.ones(8, 5, dtype=torch.float64)
    assert info_nce_loss(z, z).item() == pytest.approx(math.log(2 * 8 - 1), rel=1e-12)


def test_half_precision_and_autocast_compute_in_float32() -> None:
    z1, z2 = _pair(3, 8, 4, torch.float32)
    expected = reference_nt_xent(z1.numpy(), z2.numpy(), 0.5)
    got = info_nce_loss(z1.bfloat16(), z2.bfloat16())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = info_nce_loss(z1, z2)
    assert inside.dtype == torch.float32
    assert inside.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("temperature", [0, -0.5, float("nan"), float("inf"), "0.5", True])
def test_bad_temperature(temperature: object) -> None:
    z1, z2 = _pair(0, 4, 3)
    with pytest.raises(ValueError, match="^temperature:"):
        info_nce_loss(z1, z2, temperature=temperature)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("z1", "z2", "name"),
    [
        (torch.randn(4, 3), torch.randn(5, 3), "z2"),
        (torch.randn(4), torch.randn(4), "z1"),
        (torch.randn(1, 3), torch.randn(1, 3), "z1"),
        (torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3), "z1"),
        (torch.randn(4, 3), torch.full((4, 3), float("nan")), "z2"),
        ([[1.0, 2.0]], torch.randn(1, 2), "z1"),
    ],
)
def test_bad_embeddings(z1: object, z2: object, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        info_nce_loss(z1, z2)  # type: ignore[arg-type]

"""Uniformity and alignment on the hypersphere (Wang & Isola 2020) against float64 loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.alignment_uniformity import alignment_loss, uniformity


def _normalize(z: np.ndarray) -> np.ndarray:
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def reference_uniformity(z: np.ndarray, t: float) -> float:
    """log( mean_{i<j} exp(-t ||zn_i - zn_j||^2) ), explicit double loop in float64."""
    zn = _normalize(z.astype(np.float64))
    potentials = []
    for i in range(len(zn)):
        for j in range(i + 1, len(zn)):
            sq = sum((a - b) ** 2 for a, b in zip(zn[i], zn[j]))
            potentials.append(math.exp(-t * sq))
    return math.log(sum(potentials) / len(potentials))


def reference_alignment(z1: np.ndarray, z2: np.ndarray, alpha: float) -> float:
    """mean_b ||zn1_b - zn2_b||^alpha in float64."""
    diff = _normalize(z1.astype(np.float64)) - _normalize(z2.astype(np.float64))
    return float(np.mean([math.sqrt(float(np.dot(row, row))) ** alpha for row in diff]))


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _orthogonal(seed: int, dim: int) -> torch.Tensor:
    q, r = torch.linalg.qr(_randn(seed, dim, dim))
    return q * torch.sign(torch.diagonal(r))  # (d, d), Haar-distributed rotation/reflection


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(2, 7),
    dim=st.integers(1, 5),
    t=st.floats(0.1, 10.0),
    alpha=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
)
def test_matches_reference(seed: int, batch: int, dim: int, t: float, alpha: float) -> None:
    z1, z2 = _randn(seed, batch, dim), _randn(seed + 1, batch, dim)
    assert uniformity(z1, t=t).item() == pytest.approx(reference_uniformity(z1.numpy(), t), rel=1e-10, abs=1e-10)
    expected = reference_alignment(z1.numpy(), z2.numpy(), alpha)
    assert alignment_loss(z1, z2, alpha=alpha).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_large_t_does_not_underflow() -> None:
    """exp(-t d^2) underflows to 0 for t = 500; the log-sum-exp form stays finite and exact."""
    z = _randn(0, 6, 3)
    got = uniformity(z.float(), t=500.0)
    assert torch.isfinite(got)
    zn = _normalize(z.numpy())
    sq = [float(np.sum((zn[i] - zn[j]) ** 2)) for i in range(6) for j in range(i + 1, 6)]
    m = max(-500.0 * s for s in sq)
    expected = m + math.log(sum(math.exp(-500.0 * s - m) for s in sq) / len(sq))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_gradcheck() -> None:
    z1, z2 = _randn(3, 5, 3).requires_grad_(True), _randn(4, 5, 3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: uniformity(z, t=2.0), (z1,))
    for alpha in (1.0, 2.0, 3.0):
        assert torch.autograd.gradcheck(lambda a, b: alignment_loss(a, b, alpha=alpha), (z1, z2))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(2, 8), dim=st.integers(2, 6))
def test_invariant_to_rotation_permutation_and_row_scale(seed: int, batch: int, dim: int) -> None:
    z = _randn(seed, batch, dim)
    base = uniformity(z).item()
    q = _orthogonal(seed + 1, dim)
    assert uniformity(z @ q).item() == pytest.approx(base, rel=1e-9, abs=1e-12)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    assert uniformity(z[perm]).item() == pytest.approx(base, rel=1e-9, abs=1e-12)
    scale = torch.rand(batch, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.1
    assert uniformity(scale * z).item() == pytest.approx(base, rel=1e-9, abs=1e-12)


def test_collapse_is_the_worst_value_with_a_finite_gradient() -> None:
    collapsed = torch.ones(8, 4, dtype=torch.float64, requires_grad=True)
    value = uniformity(collapsed)
    assert value.item() == 0.0
    (grad,) = torch.autograd.grad(value, collapsed)
    assert torch.isfinite(grad).all()
    assert uniformity(_randn(0, 8, 4)).item() < -0.5


def test_spread_points_are_better() -> None:
    """Orthogonal rows: every squared distance is 2, so the value is exactly -2 t."""
    assert uniformity(torch.eye(6, dtype=torch.float64), t=3.0).item() == pytest.approx(-6.0, abs=1e-12)
    # Antipodal pairs are further apart than orthogonal ones: 2 antipodal points give -4 t.
    pair = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert uniformity(pair, t=2.0).item() == pytest.approx(-8.0, abs=1e-12)


def test_alignment_extremes_and_identical_pairs() -> None:
    z = _randn(5, 6, 4).requires_grad_(True)
    for alpha in (0.5, 1.0, 2.0):
        value = alignment_loss(z, z.detach() * 2, alpha=alpha)
        assert value.item() == pytest.approx(0.0, abs=1e-12)
        (grad,) = torch.autograd.grad(value, z)
        assert torch.isfinite(grad).all()
    assert alignment_loss(z, -z, alpha=3.0).item() == pytest.approx(8.0, abs=1e-12)


def test_bfloat16_computes_in_float32() -> None:
    z = _randn(0, 6, 4).bfloat16()
    assert uniformity(z).dtype == torch.float32
    assert alignment_loss(z, z).dtype == torch.float32


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: uniformity(torch.randn(4, 3), t=0.0), "t"),
        (lambda: uniformity(torch.randn(4, 3), t=float("nan")), "t"),
        (lambda: uniformity(torch.randn(1, 3)), "z"),
        (lambda: uniformity(torch.randn(2, 3, 4)), "z"),
        (lambda: alignment_loss(torch.randn(4, 3), torch.randn(4, 3), alpha=-1.0), "alpha"),
        (lambda: alignment_loss(torch.randn(4, 3), torch.randn(4, 2)), "z2"),
        (lambda: alignment_loss(torch.full((4, 3), float("nan")), torch.randn(4, 3)), "z1"),
    ],
)
def test_bad_input(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        call()  # type: ignore[operator]

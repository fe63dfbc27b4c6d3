"""Negative cosine with stop-gradient (Chen & He 2021) and plain cosine alignment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.simsiam import (
    cosine_alignment,
    negative_cosine,
    negative_cosine_no_stopgrad,
    simsiam_loss,
)


def reference_cosines(a: np.ndarray, b: np.ndarray) -> list[float]:
    """cos(a_b, b_b) for each row, float64 loops."""
    out = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        dot = sum(float(u) * float(v) for u, v in zip(x, y))
        out.append(dot / (math.sqrt(float(np.dot(x, x))) * math.sqrt(float(np.dot(y, y)))))
    return out


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(2, 6), dim=st.integers(1, 6))
def test_matches_reference(seed: int, batch: int, dim: int) -> None:
    p1, p2, z1, z2 = (_randn(seed + i, batch, dim) for i in range(4))
    c12 = reference_cosines(p1.numpy(), z2.numpy())
    c21 = reference_cosines(p2.numpy(), z1.numpy())
    assert negative_cosine(p1, z2).item() == pytest.approx(-sum(c12) / batch, abs=1e-12)
    expected = -sum(c12) / batch / 2 - sum(c21) / batch / 2
    assert simsiam_loss(p1, p2, z1, z2).item() == pytest.approx(expected, abs=1e-12)
    c = reference_cosines(z1.numpy(), z2.numpy())
    assert cosine_alignment(z1, z2).item() == pytest.approx(sum(1 - x for x in c) / batch, abs=1e-12)


def test_cosine_alignment_is_half_squared_distance_of_normalized_rows() -> None:
    z1, z2 = _randn(0, 8, 5), _randn(1, 8, 5)
    zn1 = z1.numpy() / np.linalg.norm(z1.numpy(), axis=1, keepdims=True)
    zn2 = z2.numpy() / np.linalg.norm(z2.numpy(), axis=1, keepdims=True)
    expected = float(np.mean(np.sum((zn1 - zn2) ** 2, axis=1)) / 2)
    assert cosine_alignment(z1, z2).item() == pytest.approx(expected, abs=1e-12)


def test_stop_gradient_on_target() -> None:
    p = _randn(0, 6, 4).requires_grad_(True)
    z = _randn(1, 6, 4).requires_grad_(True)
    (grad_z,) = torch.autograd.grad(negative_cosine(p, z), z, allow_unused=True)
    assert grad_z is None or bool((grad_z == 0).all())


def test_stop_gradient_when_prediction_depends_on_target() -> None:
    """p = h(z), z = f(x): the loss may reach x only through p, never through the target z."""
    x = _randn(2, 6, 4).requires_grad_(True)
    w = _randn(3, 4, 4)
    z = torch.tanh(x)  # the projector output, shared by both branches
    p = z @ w  # (B, d) @ (d, d) -> (B, d), the predictor
    (grad_x,) = torch.autograd.grad(negative_cosine(p, z), x)
    x2 = x.detach().clone().requires_grad_(True)
    z_const = torch.tanh(x.detach())
    p2 = torch.tanh(x2) @ w
    pn, zn = p2 / p2.norm(dim=1, keepdim=True), z_const / z_const.norm(dim=1, keepdim=True)
    (expected,) = torch.autograd.grad(-(pn * zn).sum(dim=1).mean(), x2)
    torch.testing.assert_close(grad_x, expected, rtol=1e-12, atol=1e-12)


def test_simsiam_loss_has_no_gradient_into_targets() -> None:
    p1, p2, z1, z2 = (_randn(i, 5, 3).requires_grad_(True) for i in range(4))
    grads = torch.autograd.grad(simsiam_loss(p1, p2, z1, z2), (p1, p2, z1, z2), allow_unused=True)
    assert grads[0] is not None and grads[1] is not None
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
    assert all(g is None or bool((g == 0).all()) for g in grads[2:])


def test_gradcheck() -> None:
    p1, p2, z1, z2 = (_randn(10 + i, 4, 3) for i in range(4))
    p1.requires_grad_(True)
    p2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: negative_cosine(p, z2), (p1,))
    assert torch.autograd.gradcheck(lambda a, b: simsiam_loss(a, b, z1, z2), (p1, p2))
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    assert torch.autograd.gradcheck(cosine_alignment, (z1, z2))


def test_extremes() -> None:
    z = _randn(0, 8, 5)
    assert negative_cosine(z, 3 * z).item() == pytest.approx(-1.0, abs=1e-12)
    assert cosine_alignment(z, 2 * z).item() == pytest.approx(0.0, abs=1e-12)
    assert cosine_alignment(z, -z).item() == pytest.approx(2.0, abs=1e-12)


def test_bfloat16_computes_in_float32() -> None:
    p, z = _randn(0, 8, 5).bfloat16(), _randn(1, 8, 5).bfloat16()
    assert negative_cosine(p, z).dtype == torch.float32
    assert cosine_alignment(p, z).dtype == torch.float32


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: negative_cosine(torch.randn(4, 3), torch.randn(4, 2)), "z"),
        (lambda: negative_cosine(torch.randn(4), torch.randn(4, 3)), "p"),
        (lambda: simsiam_loss(torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3), torch.randn(3, 3)), "z2"),
        (lambda: simsiam_loss(torch.randn(4, 3), torch.randn(1, 3), torch.randn(4, 3), torch.randn(4, 3)), "p2"),
        (lambda: cosine_alignment(torch.randn(4, 3), torch.full((4, 3), float("inf"))), "z2"),
        (lambda: cosine_alignment(torch.ones(4, 3, dtype=torch.int32), torch.randn(4, 3)), "z1"),
    ],
)
def test_bad_input(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        call()  # type: ignore[operator]


def test_no_stopgrad_variant_has_the_same_value_and_a_gradient_into_the_target() -> None:
    p, z = _randn(4, 6, 5), _randn(5, 6, 5)
    expected = -sum(reference_cosines(p.numpy(), z.numpy())) / 6
    assert negative_cosine_no_stopgrad(p, z).item() == pytest.approx(expected, abs=1e-12)
    # d/dz_b of -cos(p_b, z_b)/B = -(pn_b - cos_b zn_b) / (B ||z_b||), written from the formula
    pn = p.numpy() / np.linalg.norm(p.numpy(), axis=1, keepdims=True)
    norms = np.linalg.norm(z.numpy(), axis=1, keepdims=True)
    cos = np.array(reference_cosines(p.numpy(), z.numpy()))[:, None]
    expected_grad = -(pn - cos * z.numpy() / norms) / (6 * norms)
    z_leaf = z.clone().requires_grad_(True)
    (grad_z,) = torch.autograd.grad(negative_cosine_no_stopgrad(p, z_leaf), z_leaf)
    np.testing.assert_allclose(grad_z.numpy(), expected_grad, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="z"):
        negative_cosine_no_stopgrad(torch.randn(4, 3), torch.randn(4, 2))

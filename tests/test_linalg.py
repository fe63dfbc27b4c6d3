"""Tests of covssl/linalg.py against independent float64 numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.linalg import (
    at_least_float32,
    center,
    covariance,
    cross_gram_frobenius_sq,
    logdet_identity_plus_gram,
    logdet_spd,
    offdiagonal_sq_sum,
    use_sample_side,
)

# (batch, dim): both sides of B = d, so "auto" picks each path at least once.
SHAPES = [(3, 7), (8, 32), (16, 5), (6, 6), (40, 12)]


def _randn(batch: int, dim: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=gen, dtype=dtype)


def _assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-8) -> None:
    """Norm-wise relative error, so near-zero entries of a gradient do not need their own tolerance."""
    err = torch.linalg.vector_norm((actual - expected).double()).item()
    scale = torch.linalg.vector_norm(expected.double()).item()
    assert err <= rel * max(scale, 1e-300), f"relative error {err / max(scale, 1e-300):.3e} > {rel}"


def _value_and_grad(fn, *inputs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    value = fn(*leaves)
    grads = torch.autograd.grad(value, leaves)
    return value.detach(), list(grads)


# ---------------------------------------------------------------- path selection, dtypes, centering


def test_use_sample_side_picks_the_smaller_side() -> None:
    assert use_sample_side(8, 64) is True
    assert use_sample_side(64, 8) is False
    assert use_sample_side(16, 16) is False  # a tie keeps the feature side
    assert use_sample_side(64, 8, "sample") is True
    assert use_sample_side(8, 64, "feature") is False


def test_bad_path_names_the_argument() -> None:
    with pytest.raises(ValueError, match="path"):
        use_sample_side(8, 8, "diagonal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path"):
        cross_gram_frobenius_sq(_randn(4, 5), _randn(4, 5), "both")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ],
)
def test_at_least_float32(dtype: torch.dtype, expected: torch.dtype) -> None:
    assert at_least_float32(torch.ones(2, 2, dtype=dtype)).dtype == expected


def test_center_removes_the_column_means() -> None:
    z = _randn(10, 4) + torch.arange(4.0, dtype=torch.float64)
    zc = center(z).numpy()
    np.testing.assert_allclose(zc.mean(axis=0), 0.0, atol=1e-14)
    np.testing.assert_allclose(zc, z.numpy() - z.numpy().mean(axis=0), rtol=0, atol=1e-14)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_covariance_matches_numpy_cov(batch: int, dim: int) -> None:
    z = _randn(batch, dim, seed=batch * dim) * 3 + 1
    expected = np.cov(z.numpy(), rowvar=False)  # unbiased, divisor B - 1
    np.testing.assert_allclose(covariance(z).numpy(), np.atleast_2d(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 4), (4,), (2, 3, 4)])
def test_covariance_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="z"):
        covariance(torch.ones(shape))


# ---------------------------------------------------------------- log-determinants


def test_logdet_spd_matches_numpy_slogdet() -> None:
    a = _randn(12, 9, seed=3)
    spd = a.T @ a + 0.1 * torch.eye(9, dtype=torch.float64)
    sign, expected = np.linalg.slogdet(spd.numpy())
    assert sign == 1.0
    assert logdet_spd(spd).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "matrix",
    [
        torch.tensor([[1.0, 2.0], [2.0, 1.0]]),  # indefinite (eigenvalues 3, -1)
        torch.zeros(3, 3),  # singular
        -torch.eye(2, dtype=torch.float64),  # negative definite
    ],
)
def test_logdet_spd_raises_a_clear_error_when_not_positive_definite(matrix: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="my_matrix: expected a symmetric positive-definite matrix"):
        logdet_spd(matrix, name="my_matrix")


def test_logdet_spd_upcasts_half_inputs_and_ignores_autocast() -> None:
    a = _randn(16, 8, seed=4, dtype=torch.float32)
    spd = a.T @ a / 16 + torch.eye(8)
    reference = logdet_spd(spd)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = logdet_spd(spd)
    assert under_autocast.dtype == torch.float32
    assert torch.equal(under_autocast, reference)
    from_bf16 = logdet_spd(spd.bfloat16())
    assert from_bf16.dtype == torch.float32
    assert torch.equal(from_bf16, logdet_spd(spd.bfloat16().float()))
    assert logdet_spd(spd.double()).dtype == torch.float64


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("alpha", [0.01, 1.0, 7.5])
def test_logdet_identity_plus_gram_matches_numpy(batch: int, dim: int, alpha: float) -> None:
    z = _randn(batch, dim, seed=batch + dim)
    zn = z.numpy()
    _, expected = np.linalg.slogdet(np.eye(dim) + alpha * zn.T @ zn)  # always the d x d side
    for path in ("auto", "feature", "sample"):
        assert logdet_identity_plus_gram(z, alpha, path).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_logdet_identity_plus_gram_paths_agree_in_value_and_gradient(batch: int, dim: int) -> None:
    z = _randn(batch, dim, seed=7)
    v_feat, (g_feat,) = _value_and_grad(lambda x: logdet_identity_plus_gram(x, 0.3, "feature"), z)
    v_samp, (g_samp,) = _value_and_grad(lambda x: logdet_identity_plus_gram(x, 0.3, "sample"), z)
    _assert_rel_close(v_samp, v_feat)
    _assert_rel_close(g_samp, g_feat)
    # d/dZ logdet(I + a Z^T Z) = 2 a Z (I + a Z^T Z)^{-1}, written out independently.
    zn = z.numpy()
    expected = 2 * 0.3 * zn @ np.linalg.inv(np.eye(dim) + 0.3 * zn.T @ zn)
    np.testing.assert_allclose(g_feat.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_logdet_identity_plus_gram_runs_in_float32_under_autocast() -> None:
    z = _randn(8, 24, seed=5, dtype=torch.float32)
    for path in ("feature", "sample"):
        reference = logdet_identity_plus_gram(z, 0.5, path)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = logdet_identity_plus_gram(z, 0.5, path)
        assert under_autocast.dtype == torch.float32
        assert torch.equal(under_autocast, reference)
        assert logdet_identity_plus_gram(z.bfloat16(), 0.5, path).dtype == torch.float32


def test_logdet_identity_plus_gram_raises_instead_of_nan_on_overflow() -> None:
    z = torch.full((4, 6), 1e20)  # finite, but Z^T Z overflows float32
    with pytest.raises(ValueError, match="positive-definite"):
        logdet_identity_plus_gram(z, 1.0)


# ---------------------------------------------------------------- Frobenius norms of Gram matrices


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("same", [True, False])
def test_cross_gram_frobenius_sq_matches_numpy(batch: int, dim: int, same: bool) -> None:
    a = _randn(batch, dim, seed=1)
    b = a if same else _randn(batch, dim, seed=2)
    expected = np.sum((a.numpy().T @ b.numpy()) ** 2)
    for path in ("auto", "feature", "sample"):
        assert cross_gram_frobenius_sq(a, b, path).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_cross_gram_frobenius_sq_paths_agree_in_value_and_gradient(batch: int, dim: int) -> None:
    a, b = _randn(batch, dim, seed=11), _randn(batch, dim, seed=12)
    v_f, g_f = _value_and_grad(lambda x, y: cross_gram_frobenius_sq(x, y, "feature"), a, b)
    v_s, g_s = _value_and_grad(lambda x, y: cross_gram_frobenius_sq(x, y, "sample"), a, b)
    _assert_rel_close(v_s, v_f)
    for gs, gf in zip(g_s, g_f):
        _assert_rel_close(gs, gf)
    # Same tensor as both arguments exercises the shared-Gram shortcut of the sample path.
    v_f1, (g_f1,) = _value_and_grad(lambda x: cross_gram_frobenius_sq(x, x, "feature"), a)
    v_s1, (g_s1,) = _value_and_grad(lambda x: cross_gram_frobenius_sq(x, x, "sample"), a)
    _assert_rel_close(v_s1, v_f1)
    _assert_rel_close(g_s1, g_f1)
    # d/dA ||A^T A||_F^2 = 4 A A^T A
    _assert_rel_close(g_f1, 4 * a @ a.T @ a)


def _offdiag_reference(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    c = scale * a.T @ b
    total = 0.0
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            if i != j:
                total += c[i, j] ** 2
    return total


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_offdiagonal_sq_sum_matches_an_explicit_loop(batch: int, dim: int, scale: float) -> None:
    a, b = _randn(batch, dim, seed=21), _randn(batch, dim, seed=22)
    expected = _offdiag_reference(a.numpy(), b.numpy(), scale)
    for path in ("auto", "feature", "sample"):
        assert offdiagonal_sq_sum(a, b, scale, path).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("batch", "dim"), SHAPES)
def test_offdiagonal_sq_sum_paths_agree_in_value_and_gradient(batch: int, dim: int) -> None:
    a, b = _randn(batch, dim, seed=31), _randn(batch, dim, seed=32)
    v_f, g_f = _value_and_grad(lambda x, y: offdiagonal_sq_sum(x, y, 0.1, "feature"), a, b)
    v_s, g_s = _value_and_grad(lambda x, y: offdiagonal_sq_sum(x, y, 0.1, "sample"), a, b)
    _assert_rel_close(v_s, v_f)
    for gs, gf in zip(g_s, g_f):
        _assert_rel_close(gs, gf)


@pytest.mark.parametrize("path", ["feature", "sample"])
def test_gradcheck(path: str) -> None:
    a = _randn(4, 6, seed=41).requires_grad_(True)
    b = _randn(4, 6, seed=42).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: logdet_identity_plus_gram(x, 0.5, path), (a,))
    assert torch.autograd.gradcheck(lambda x, y: cross_gram_frobenius_sq(x, y, path), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: offdiagonal_sq_sum(x, y, 0.3, path), (a, b))
    assert torch.autograd.gradcheck(lambda x: covariance(x), (a,))


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(2, 12),
    dim=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
)
def test_sylvester_identity_holds_for_any_shape(batch: int, dim: int, seed: int, scale: float) -> None:
    z = _randn(batch, dim, seed=seed) * scale
    alpha = 1.0 / (scale**2 * max(batch, dim))
    assert logdet_identity_plus_gram(z, alpha, "sample").item() == pytest.approx(
        logdet_identity_plus_gram(z, alpha, "feature").item(), rel=1e-9, abs=1e-12
    )
    assert cross_gram_frobenius_sq(z, z, "sample").item() == pytest.approx(
        cross_gram_frobenius_sq(z, z, "feature").item(), rel=1e-9
    )

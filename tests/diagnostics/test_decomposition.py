"""std_of_normalized, center_residual, gradient_split against numpy float64 references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.diagnostics import center_residual, gradient_split, std_of_normalized

from ._data import gaussian


def ref_normalize(z: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norms > 0, norms, 1.0)


def ref_std_of_normalized(z: np.ndarray) -> float:
    return float(ref_normalize(z).std(axis=0, ddof=1).mean())


def ref_center_residual(z: np.ndarray) -> tuple[float, float]:
    zn = ref_normalize(z)
    o = zn.mean(axis=0)
    return float(np.linalg.norm(o)), float(np.linalg.norm(zn - o, axis=1).mean())


def ref_split(g: np.ndarray, zn: np.ndarray) -> dict[str, float]:
    """The documented split: c = <gbar, o/||o||>, drift = gbar - c u, residual g_b - gbar."""
    gbar = g.mean(axis=0)
    o = zn.mean(axis=0)
    u = o / np.linalg.norm(o) if np.linalg.norm(o) > 0 else np.zeros_like(o)  # no direction
    c = float(gbar @ u)
    return {
        "center_grad_norm": abs(c),
        "residual_grad_norm": float(np.linalg.norm(g - gbar, axis=1).mean()),
        "center_norm_rate": -c,
        "center_drift_norm": float(np.linalg.norm(gbar - c * u)),
    }


batches = st.tuples(st.integers(2, 12), st.integers(1, 10), st.integers(0, 2**16))


# --- std of normalized ------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(batches, st.floats(0.0, 3.0))
def test_std_of_normalized_matches_numpy(shape: tuple[int, int, int], mean_scale: float) -> None:
    batch, dim, seed = shape
    z = gaussian(batch, dim, seed, mean_scale)
    assert std_of_normalized(torch.tensor(z)) == pytest.approx(ref_std_of_normalized(z), rel=1e-10)
    # each row may be rescaled by a positive number without changing its direction
    scales = np.random.default_rng(seed).uniform(0.1, 10.0, size=(batch, 1))
    assert std_of_normalized(torch.tensor(z * scales)) == pytest.approx(ref_std_of_normalized(z), rel=1e-9)


def test_std_of_normalized_healthy_is_one_over_sqrt_dim() -> None:
    z = torch.tensor(gaussian(4000, 16, seed=0))  # isotropic: zn uniform on the sphere
    assert std_of_normalized(z) == pytest.approx(1 / math.sqrt(16), rel=0.03)


def test_std_of_normalized_collapsed_is_zero() -> None:
    assert std_of_normalized(torch.tensor([[0.3, -1.0, 2.0]]).repeat(9, 1)) < 1e-12
    # same direction, different lengths: still collapsed on the sphere
    assert std_of_normalized(torch.arange(1.0, 9.0)[:, None] * torch.tensor([[1.0, 2.0]])) < 1e-12


def test_std_of_normalized_keeps_zero_rows_at_zero() -> None:
    z = gaussian(6, 4, seed=1)
    z[2] = 0.0
    assert std_of_normalized(torch.tensor(z)) == pytest.approx(ref_std_of_normalized(z), rel=1e-10)


# --- center / residual ------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(batches, st.floats(0.0, 5.0))
def test_center_residual_matches_numpy(shape: tuple[int, int, int], mean_scale: float) -> None:
    batch, dim, seed = shape
    z = gaussian(batch, dim, seed, mean_scale)
    center, residual = ref_center_residual(z)
    got = center_residual(torch.tensor(z, dtype=torch.float32))
    assert got["center_norm"] == pytest.approx(center, rel=1e-5, abs=1e-6)
    assert got["residual_norm"] == pytest.approx(residual, rel=1e-5, abs=1e-6)
    if residual < 1e-12:  # d = 1 with all signs equal: every row is the same unit vector
        assert got["center_residual_ratio"] == math.inf
    else:
        assert got["center_residual_ratio"] == pytest.approx(center / residual, rel=1e-4)


def test_center_shift_gives_a_large_ratio() -> None:
    z = gaussian(64, 8, seed=2, mean_scale=0.0) * 0.01 + 5.0  # z = c + small noise
    center, residual = ref_center_residual(z)
    got = center_residual(torch.tensor(z))
    assert got["center_norm"] == pytest.approx(1.0, abs=1e-4)
    assert got["center_residual_ratio"] == pytest.approx(center / residual, rel=1e-10)
    assert got["center_residual_ratio"] > 100.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_center_residual_collapsed(dtype: torch.dtype) -> None:
    got = center_residual(torch.tensor([[0.1, 0.7, -3.0]], dtype=dtype).repeat(11, 1))
    assert got["center_norm"] == pytest.approx(1.0, abs=1e-12)
    assert got["residual_norm"] < 1e-12
    assert got["center_residual_ratio"] == math.inf
    assert center_residual(torch.zeros(4, 3))["center_residual_ratio"] == math.inf


def test_center_residual_of_a_symmetric_batch() -> None:
    z = gaussian(5, 3, seed=4)
    got = center_residual(torch.tensor(np.concatenate([z, -z])))  # o = 0 exactly
    assert got["center_norm"] < 1e-15 and got["residual_norm"] == pytest.approx(1.0)
    assert got["center_residual_ratio"] < 1e-14


def test_center_residual_healthy_ratio() -> None:
    batch = 2000
    got = center_residual(torch.tensor(gaussian(batch, 64, seed=5)))
    assert got["center_residual_ratio"] == pytest.approx(1 / math.sqrt(batch - 1), rel=0.2)


# --- gradient split ---------------------------------------------------------------------


def test_gradient_split_of_a_pure_centering_loss() -> None:
    # L = ||o||^2: g_b = 2 o / B for every row -> no residual part, step shrinks ||o||
    z = gaussian(10, 6, seed=6, mean_scale=1.0)
    center, _ = ref_center_residual(z)
    got = gradient_split(lambda zn: zn.mean(dim=0).pow(2).sum(), torch.tensor(z))
    assert got["residual_grad_norm"] < 1e-14
    assert got["center_drift_norm"] < 1e-14
    assert got["center_grad_norm"] == pytest.approx(2 * center / 10, rel=1e-12)
    assert got["center_norm_rate"] == pytest.approx(-2 * center / 10, rel=1e-12)
    assert got["grad_ratio"] > 1e10


def test_gradient_split_of_a_pure_residual_loss() -> None:
    # L = sum_b ||r_b||^2: g_b = 2 r_b, which sums to zero -> no center part
    z = gaussian(10, 6, seed=7, mean_scale=1.0)
    zn = ref_normalize(z)
    residual = zn - zn.mean(axis=0)
    got = gradient_split(lambda zn: (zn - zn.mean(dim=0)).pow(2).sum(), torch.tensor(z))
    assert got["center_grad_norm"] < 1e-14 and got["center_drift_norm"] < 1e-14
    assert got["residual_grad_norm"] == pytest.approx(2 * np.linalg.norm(residual, axis=1).mean(), rel=1e-12)
    assert got["grad_ratio"] < 1e-12


@settings(max_examples=25, deadline=None)
@given(batches, st.booleans())
def test_gradient_split_of_a_linear_loss_matches_numpy(shape: tuple[int, int, int], tangent: bool) -> None:
    # L = sum_b <w_b, zn_b> has g_b = w_b (tangent: w_b - <w_b, zn_b> zn_b)
    batch, dim, seed = shape
    z = gaussian(batch, dim, seed, mean_scale=1.0)
    w = np.random.default_rng(seed + 1).normal(size=(batch, dim))
    zn = ref_normalize(z)
    g = w - (w * zn).sum(axis=1, keepdims=True) * zn if tangent else w
    expected = ref_split(g, zn)
    weights = torch.tensor(w)
    got = gradient_split(lambda zn: (weights * zn).sum(), torch.tensor(z), tangent=tangent)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    if expected["residual_grad_norm"] > 1e-12:
        ratio = expected["center_grad_norm"] / expected["residual_grad_norm"]
        assert got["grad_ratio"] == pytest.approx(ratio, rel=1e-9)


def test_gradient_split_sees_infonce_style_de_centering() -> None:
    # Repulsion through dot products (InfoNCE's negatives, Zhang et al.): the step is -o-ward.
    z = torch.tensor(gaussian(32, 8, seed=8, mean_scale=1.0))

    def repulsion(zn: torch.Tensor) -> torch.Tensor:
        sim = zn @ zn.T / 0.5  # (B, d) @ (d, B) -> (B, B)
        mask = ~torch.eye(zn.shape[0], dtype=torch.bool)
        return torch.logsumexp(sim[mask], dim=0)

    assert gradient_split(repulsion, z)["center_norm_rate"] < 0
    # attraction of all pairs pulls the batch together: ||o|| grows
    assert gradient_split(lambda zn: -(zn @ zn.T).sum(), z)["center_norm_rate"] > 0


def test_gradient_split_passes_unit_rows_and_handles_a_constant_loss() -> None:
    z = torch.tensor(gaussian(6, 5, seed=9)) * 7.0
    seen = {}

    def loss(zn: torch.Tensor) -> torch.Tensor:
        seen["norms"] = torch.linalg.vector_norm(zn.detach(), dim=1)
        return torch.tensor(1.0)

    got = gradient_split(loss, z)
    np.testing.assert_allclose(seen["norms"].numpy(), np.ones(6), rtol=1e-12)
    assert got["center_grad_norm"] == 0.0 and got["residual_grad_norm"] == 0.0
    assert math.isnan(got["grad_ratio"])


def test_gradient_split_works_under_no_grad_and_inference_mode() -> None:
    z = torch.tensor(gaussian(10, 6, seed=10, mean_scale=1.0))
    expected = gradient_split(lambda zn: zn.mean(dim=0).pow(2).sum(), z)
    with torch.no_grad():
        assert gradient_split(lambda zn: zn.mean(dim=0).pow(2).sum(), z) == expected
    with torch.inference_mode():
        z_inference = z.clone()
        assert gradient_split(lambda zn: zn.mean(dim=0).pow(2).sum(), z_inference) == expected


def test_gradient_split_rejects_bad_loss_functions() -> None:
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="loss_fn"):
        gradient_split("mse", z)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="loss_fn.*scalar"):
        gradient_split(lambda zn: zn.sum(dim=0), z)
    with pytest.raises(ValueError, match="loss_fn.*finite"):
        gradient_split(lambda zn: zn.abs().sqrt().sum(), torch.eye(3))  # d sqrt(|x|) at x = 0

"""RankMe, alpha-ReQ, NESum, stable rank, LiDAR, W2 uniformity: constructed inputs with known
answers, numpy/scipy references written from the papers' formulas, and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.diagnostics import (
    alpha_req,
    label_free_metrics,
    lidar,
    nesum,
    rankme,
    stable_rank,
    w2_uniformity,
)

from ._data import centered_orthonormal, gaussian, rank_k, whitened


# ---------------------------------------------------------------- independent references
def ref_rankme(z: np.ndarray, eps: float = 1e-7) -> float:
    """Garrido et al. 2023, eq. 1: uncentered singular values, p = s / ||s||_1 + eps."""
    s = np.linalg.svd(z, compute_uv=False)
    p = s / np.abs(s).sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def ref_cov_eigenvalues(z: np.ndarray) -> np.ndarray:
    return np.clip(np.sort(np.linalg.eigvalsh(np.cov(z, rowvar=False)))[::-1], 0.0, None)


def ref_alpha_req(z: np.ndarray, first: int = 11, last: int = 100) -> tuple[float, float]:
    """Weighted (1/i) least squares of log lambda_i on log i, i = first..last, by numpy.polyfit."""
    lam = ref_cov_eigenvalues(z)[first - 1 : last]
    i = np.arange(first, last + 1, dtype=np.float64)
    x, y, w = np.log(i), np.log(lam), 1.0 / i
    slope, intercept = np.polyfit(x, y, 1, w=np.sqrt(w))  # polyfit weights the unsquared residuals
    fitted = slope * x + intercept
    y_mean = np.average(y, weights=w)
    r2 = 1.0 - np.sum(w * (y - fitted) ** 2) / np.sum(w * (y - y_mean) ** 2)
    return float(-slope), float(r2)


def ref_lidar(views: np.ndarray, delta: float = 1e-4, eps: float = 1e-8) -> float:
    """Thilak et al. 2024 via scipy's generalized symmetric eigenproblem Sigma_b v = lambda Sigma_w v
    (same eigenvalues as Sigma_w^{-1/2} Sigma_b Sigma_w^{-1/2}, no matrix root taken)."""
    num_views, n, d = views.shape
    mu_n = views.mean(axis=0)
    mu = mu_n.mean(axis=0)
    sigma_b = sum(np.outer(m - mu, m - mu) for m in mu_n) / (n - 1)
    sigma_w = np.zeros((d, d))
    for image in range(n):
        for v in range(num_views):
            r = views[v, image] - mu_n[image]
            sigma_w += np.outer(r, r)
    sigma_w = sigma_w / (n * (num_views - 1)) + delta * np.eye(d)
    lam = np.clip(scipy.linalg.eigh(sigma_b, sigma_w, eigvals_only=True), 0.0, None)
    p = (lam + eps) / (lam + eps).sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def power_law(samples: int, dim: int, alpha: float, seed: int = 0) -> np.ndarray:
    """Centered batch whose covariance eigenvalues are exactly c * i^(-alpha), i = 1..dim."""
    u = centered_orthonormal(np.random.default_rng(seed), samples, dim)  # (N, d)
    q, _ = np.linalg.qr(np.random.default_rng(seed + 1).normal(size=(dim, dim)))
    return (u * np.arange(1, dim + 1) ** (-alpha / 2)) @ q.T  # rotated: not axis-aligned


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


# ---------------------------------------------------------------------------- RankMe
@pytest.mark.parametrize("shape", [(64, 8), (8, 64), (300, 32), (33, 33)])
def test_rankme_matches_reference(shape: tuple[int, int]) -> None:
    z = gaussian(*shape, seed=1, mean_scale=2.0)
    assert rankme(t(z)) == pytest.approx(ref_rankme(z), rel=1e-10)
    assert rankme(t(z).float()) == pytest.approx(ref_rankme(z), rel=1e-5)


def test_rankme_is_uncentered() -> None:
    """A common offset adds a direction to RankMe (the paper's choice) but not to the centered ranks."""
    z = whitened(200, 4, offset=0.0)
    shifted = np.concatenate([z, np.zeros((200, 2))], axis=1) + np.eye(6)[4]  # a mean along a fresh axis
    assert rankme(t(z)) == pytest.approx(4.0, rel=1e-5)
    # singular values: sqrt(199) four times (the whitened columns), sqrt(200) (the mean, orthogonal to them)
    assert rankme(t(shifted)) == pytest.approx(ref_rankme(np.diag([199**0.5] * 4 + [200**0.5, 0.0])), rel=1e-9)
    assert rankme(t(shifted)) == pytest.approx(5.0, rel=1e-4)
    assert nesum(t(shifted)) == pytest.approx(4.0)  # centered: the offset is invisible


@pytest.mark.parametrize("k", [1, 3, 7])
def test_rankme_of_equal_singular_values_is_k(k: int) -> None:
    z = np.zeros((20, 10))
    z[np.arange(k), np.arange(k)] = 5.0
    expected = math.exp(-k * (1 / k + 1e-7) * math.log(1 / k + 1e-7) - (10 - k) * 1e-7 * math.log(1e-7))
    assert rankme(t(z)) == pytest.approx(expected, rel=1e-12)
    assert rankme(t(z)) == pytest.approx(k, rel=1e-4)


def test_rankme_collapsed_and_zero() -> None:
    assert rankme(torch.ones(50, 16)) == pytest.approx(1.0, abs=1e-4)
    assert rankme(torch.zeros(50, 16)) == pytest.approx(math.exp(-16 * 1e-7 * math.log(1e-7)))


def test_rankme_eps_is_the_published_default_and_used() -> None:
    z = t(gaussian(40, 6, seed=3))
    assert rankme(z) == rankme(z, eps=1e-7)
    assert rankme(z, eps=1e-2) == pytest.approx(ref_rankme(z.numpy(), eps=1e-2), rel=1e-10)
    with pytest.raises(ValueError, match="eps"):
        rankme(z, eps=0.0)


# ------------------------------------------------------------------- NESum, stable rank
@pytest.mark.parametrize("k", [1, 2, 5])
def test_nesum_and_stable_rank_of_rank_k(k: int) -> None:
    z = t(rank_k(40, 8, k, seed=k))
    assert nesum(z) == pytest.approx(k, rel=1e-9)
    assert stable_rank(z) == pytest.approx(k, rel=1e-9)


@pytest.mark.parametrize("shape", [(64, 8), (8, 64), (100, 100)])
def test_nesum_and_stable_rank_match_references(shape: tuple[int, int]) -> None:
    z = gaussian(*shape, seed=2, mean_scale=3.0)
    lam = ref_cov_eigenvalues(z)
    assert nesum(t(z)) == pytest.approx(lam.sum() / lam[0], rel=1e-9)
    zc = z - z.mean(axis=0)
    assert stable_rank(t(z)) == pytest.approx(np.linalg.norm(zc, "fro") ** 2 / np.linalg.norm(zc, 2) ** 2, rel=1e-9)


def test_nesum_of_a_known_spectrum() -> None:
    z = power_law(300, 50, alpha=1.0)  # lambda_i = c / i
    assert nesum(t(z)) == pytest.approx(sum(1 / i for i in range(1, 51)), rel=1e-9)


def test_nesum_and_stable_rank_collapsed_are_zero() -> None:
    assert nesum(torch.full((10, 4), 3.0)) == 0.0
    assert stable_rank(torch.full((10, 4), 3.0)) == 0.0


# -------------------------------------------------------------------------- alpha-ReQ
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.5])
def test_alpha_req_recovers_a_power_law(alpha: float) -> None:
    fit = alpha_req(t(power_law(400, 128, alpha)))
    assert fit["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-12)


def test_alpha_req_matches_the_weighted_fit_reference() -> None:
    rng = np.random.default_rng(5)
    z = power_law(500, 150, alpha=1.2) * np.exp(0.3 * rng.normal(size=150))  # a noisy spectrum
    expected_alpha, expected_r2 = ref_alpha_req(z)
    fit = alpha_req(t(z))
    assert fit["alpha"] == pytest.approx(expected_alpha, rel=1e-9)
    assert fit["r2"] == pytest.approx(expected_r2, rel=1e-9)
    assert fit["r2"] < 0.999  # the reference is not trivially 1


def test_alpha_req_weights_matter() -> None:
    """Two slopes (1 on ranks 11..30, 3 after): the 1/i weights pull the fit towards the head."""
    i = np.arange(1, 129, dtype=np.float64)
    lam = np.where(i <= 30, i**-1.0, 30.0**2 * i**-3.0)
    u = centered_orthonormal(np.random.default_rng(0), 300, 128)
    fit = alpha_req(t(u * np.sqrt(lam)))
    x, y = np.log(i[10:100]), np.log(lam[10:100])
    unweighted = -np.polyfit(x, y, 1)[0]
    assert fit["alpha"] == pytest.approx(ref_alpha_req(u * np.sqrt(lam))[0], rel=1e-9)
    assert fit["alpha"] < unweighted - 0.05


def test_alpha_req_needs_enough_eigenvalues() -> None:
    with pytest.raises(ValueError, match=r"min\(N - 1, d\) >= 100, got N = 100, d = 128"):
        alpha_req(torch.randn(100, 128))
    with pytest.raises(ValueError, match=r"min\(N - 1, d\) >= 100, got N = 500, d = 64"):
        alpha_req(torch.randn(500, 64))
    with pytest.raises(ValueError, match="ranks"):
        alpha_req(torch.randn(500, 128), ranks=(50, 20))


def test_alpha_req_dimensional_collapse_is_infinite() -> None:
    fit = alpha_req(t(rank_k(300, 128, 40)))
    assert fit["alpha"] == math.inf and math.isnan(fit["r2"])


# ----------------------------------------------------------------------------- LiDAR
def _views(n: int, d: int, num_views: int, noise: float, seed: int, signal_dims: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, d))
    if signal_dims is not None:
        images[:, signal_dims:] = 0.0  # only the first directions tell images apart
    return images[None] + noise * rng.normal(size=(num_views, n, d))


@pytest.mark.parametrize(("n", "d", "num_views"), [(50, 6, 2), (200, 16, 4), (30, 40, 3)])
def test_lidar_matches_the_generalized_eigenproblem_reference(n: int, d: int, num_views: int) -> None:
    views = _views(n, d, num_views, noise=0.5, seed=n)
    assert lidar(t(views)) == pytest.approx(ref_lidar(views), rel=1e-8)
    assert lidar([t(v) for v in views]) == pytest.approx(ref_lidar(views), rel=1e-8)
    assert lidar(t(views), delta=0.1, eps=1e-3) == pytest.approx(ref_lidar(views, 0.1, 1e-3), rel=1e-8)


def test_lidar_counts_only_directions_that_tell_images_apart() -> None:
    """Noise-only directions vary (RankMe counts them) but carry no image identity (LiDAR does not)."""
    views = _views(1000, 10, 4, noise=0.1, seed=0, signal_dims=3)
    assert lidar(t(views)) == pytest.approx(3.0, rel=0.1)
    assert rankme(t(views[0])) > 5.0


def test_lidar_of_copies_is_the_effective_rank_of_the_between_covariance() -> None:
    base = whitened(300, 5, offset=1.0)
    copies = np.stack([base, base, base])
    assert lidar(t(copies)) == pytest.approx(5.0, rel=1e-6)  # Sigma_b = I, Sigma_w = delta I


def test_lidar_complete_collapse_is_uniform_over_d() -> None:
    assert lidar(torch.ones(3, 20, 7)) == pytest.approx(7.0)


def test_lidar_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2 views"):
        lidar([torch.randn(10, 3)])
    with pytest.raises(ValueError, match=r"views\[1\]: expected the shape"):
        lidar([torch.randn(10, 3), torch.randn(9, 3)])
    with pytest.raises(ValueError, match=r"\(V, N, d\)"):
        lidar(torch.randn(10, 3))
    with pytest.raises(ValueError, match=r"views\[0\]: expected finite"):
        lidar(torch.tensor([[[math.nan, 1.0], [0.0, 1.0]]] * 2))
    with pytest.raises(ValueError, match="singular"):
        lidar(torch.randn(1, 5, 3).expand(2, 5, 3), delta=0.0)
    with pytest.raises(ValueError, match="delta"):
        lidar(torch.randn(2, 5, 3), delta=-1.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 5), st.integers(8, 40), st.integers(1, 6), st.integers(0, 2**16))
def test_lidar_is_invariant_to_invertible_linear_maps_without_ridge(
    num_views: int, n: int, d: int, seed: int
) -> None:
    """With delta = 0, eig(Sigma_w^{-1} Sigma_b) does not change under z -> A z (A invertible)."""
    views = _views(n, d, num_views, noise=0.7, seed=seed)
    rng = np.random.default_rng(seed + 1)
    a = rng.normal(size=(d, d)) + 3.0 * np.eye(d)  # well-conditioned
    if n * (num_views - 1) <= 2 * d:
        return  # Sigma_w would be (nearly) singular
    assert lidar(t(views @ a.T), delta=0.0) == pytest.approx(lidar(t(views), delta=0.0), rel=1e-6)


# -------------------------------------------------------------------------- W2 uniformity
def test_w2_uniformity_metric_equals_the_objective_term() -> None:
    from covssl.objectives import w2_uniformity as term

    z = torch.randn(64, 8, dtype=torch.float64)
    assert w2_uniformity(z) == pytest.approx(float(term(z)), rel=1e-12)
    assert isinstance(w2_uniformity(z), float)
    assert w2_uniformity(torch.ones(8, 4)) == pytest.approx(math.sqrt(2))


# ----------------------------------------------------------------- invariants, all metrics
SCALE_INVARIANT = {"rankme": rankme, "nesum": nesum, "stable_rank": stable_rank, "w2_uniformity": w2_uniformity}


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 30), st.integers(1, 12), st.integers(0, 2**16), st.sampled_from([1e-30, 1e-3, 7.0, 1e30, 1e200]))
def test_scale_and_row_order_invariance(batch: int, dim: int, seed: int, scale: float) -> None:
    z = gaussian(batch, dim, seed, mean_scale=1.0)
    perm = np.random.default_rng(seed).permutation(batch)
    for name, fn in SCALE_INVARIANT.items():
        base = fn(t(z))
        assert math.isfinite(base), name
        assert fn(t(z * scale)) == pytest.approx(base, rel=1e-7, abs=1e-12), name
        assert fn(t(z[perm])) == pytest.approx(base, rel=1e-7, abs=1e-12), name


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 30), st.integers(1, 12), st.integers(0, 2**16))
def test_bounds(batch: int, dim: int, seed: int) -> None:
    z = t(gaussian(batch, dim, seed, mean_scale=1.0))
    top = min(batch, dim)
    assert 1.0 - 1e-6 <= rankme(z) <= top * (1 + 1e-3)
    for fn in (nesum, stable_rank):
        value = fn(z)
        assert value == 0.0 or 1.0 - 1e-9 <= value <= min(batch - 1, dim) + 1e-9
    assert 0.0 <= w2_uniformity(z) <= math.sqrt(2) + 1e-12


def test_label_free_metrics_keys_and_values() -> None:
    z = t(power_law(300, 128, alpha=1.0))
    metrics = label_free_metrics(z)
    assert metrics == {
        "rankme": rankme(z), "nesum": nesum(z), "stable_rank": stable_rank(z), "w2_uniformity": w2_uniformity(z),
        "alpha_req": pytest.approx(1.0), "alpha_req_r2": pytest.approx(1.0),
    }
    assert all(isinstance(v, float) for v in metrics.values())

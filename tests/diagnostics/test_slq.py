"""Stochastic Lanczos quadrature against exact float64 log-determinants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from covssl.diagnostics import logdet_slq, logdet_slq_gram


def random_spd(dim: int, seed: int, log_range: float = 1.5) -> tuple[torch.Tensor, np.ndarray]:
    """A = Q diag(lambda) Q^T with log lambda uniform in [-log_range, log_range]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    lam = np.exp(rng.uniform(-log_range, log_range, size=dim))
    return torch.tensor((q * lam) @ q.T), (q, lam)


def exact_logdet(a: torch.Tensor) -> float:
    sign, value = torch.linalg.slogdet(a.to(torch.float64))
    assert float(sign) == 1.0
    return float(value)


def recording(a: torch.Tensor) -> tuple[list[torch.Tensor], object]:
    """matvec that keeps the blocks it is called with (the first holds the scaled probes)."""
    calls: list[torch.Tensor] = []

    def matvec(v: torch.Tensor) -> torch.Tensor:
        calls.append(v.clone())
        return a @ v  # (dim, dim) @ (dim, n) -> (dim, n)

    return calls, matvec


@pytest.mark.parametrize(("dim", "steps"), [(12, 12), (40, 40), (80, 25)])
def test_quadrature_equals_hutchinson_with_the_same_probes(dim: int, steps: int) -> None:
    # With enough Lanczos steps the Gauss quadrature of v^T log(A) v is exact, so the SLQ
    # estimate must equal Hutchinson's estimate with the exact log(A) and the same probes.
    a, (q, lam) = random_spd(dim, seed=dim)
    calls, matvec = recording(a)
    gen = torch.Generator().manual_seed(0)
    estimate, se = logdet_slq(matvec, dim, num_probes=8, lanczos_steps=steps, generator=gen)
    probes = calls[0].numpy() * math.sqrt(dim)  # first block = v / ||v||, ||v|| = sqrt(dim)
    np.testing.assert_allclose(np.abs(probes), 1.0, rtol=1e-12)  # Rademacher
    log_a = (q * np.log(lam)) @ q.T
    per_probe = np.einsum("in,ij,jn->n", probes, log_a, probes)  # v^T log(A) v per probe
    assert estimate == pytest.approx(per_probe.mean(), abs=1e-8 * dim)
    assert se == pytest.approx(per_probe.std(ddof=1) / math.sqrt(8), rel=1e-6)


@pytest.mark.parametrize("dim", [16, 64, 200])
def test_estimate_is_within_three_standard_errors(dim: int) -> None:
    a, _ = random_spd(dim, seed=100 + dim)
    gen = torch.Generator().manual_seed(dim)
    estimate, se = logdet_slq(lambda v: a @ v, dim, num_probes=64, lanczos_steps=30, generator=gen)
    assert abs(estimate - exact_logdet(a)) < 3 * se


def test_error_and_standard_error_shrink_with_more_probes() -> None:
    dim = 48
    a, _ = random_spd(dim, seed=7)
    exact = exact_logdet(a)
    stats = {}
    for probes in (10, 160):
        runs = [
            logdet_slq(lambda v: a @ v, dim, probes, 20, generator=torch.Generator().manual_seed(seed))
            for seed in range(8)
        ]
        stats[probes] = (np.mean([abs(e - exact) for e, _ in runs]), np.mean([se for _, se in runs]))
    (err_few, se_few), (err_many, se_many) = stats[10], stats[160]
    assert 2.5 < se_few / se_many < 6.0  # sqrt(160 / 10) = 4
    assert err_many < err_few / 2


def test_deterministic_under_a_generator() -> None:
    a, _ = random_spd(30, seed=1)
    first = logdet_slq(lambda v: a @ v, 30, 12, 15, generator=torch.Generator().manual_seed(5))
    again = logdet_slq(lambda v: a @ v, 30, 12, 15, generator=torch.Generator().manual_seed(5))
    other = logdet_slq(lambda v: a @ v, 30, 12, 15, generator=torch.Generator().manual_seed(6))
    assert first == again and first != other


def test_exact_for_diagonal_and_low_degree_operators() -> None:
    # Diagonal A: v^T log(A) v = tr log A for every Rademacher v, so the error bar is 0.
    lam = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    estimate, se = logdet_slq(lambda v: lam[:, None] * v, 5, num_probes=6, lanczos_steps=5)
    assert estimate == pytest.approx(float(lam.log().sum()), abs=1e-12) and se < 1e-12
    # The identity breaks Lanczos down after one step (Krylov space of dimension 1).
    estimate, se = logdet_slq(lambda v: v, 50, num_probes=4, lanczos_steps=20)
    assert estimate == pytest.approx(0.0, abs=1e-12) and se < 1e-12
    # Three distinct eigenvalues: breakdown after 3 steps, and the quadrature is exact.
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    lam3 = np.repeat([0.5, 2.0, 3.0], 20)
    a = torch.tensor((q * lam3) @ q.T)
    calls, matvec = recording(a)
    gen = torch.Generator().manual_seed(0)
    estimate, _ = logdet_slq(matvec, 60, num_probes=5, lanczos_steps=20, generator=gen)
    probes = calls[0].numpy() * math.sqrt(60)
    expected = np.einsum("in,ij,jn->n", probes, (q * np.log(lam3)) @ q.T, probes).mean()
    assert estimate == pytest.approx(expected, abs=1e-8)


def test_lanczos_steps_are_capped_at_dim_and_one_probe_has_no_error_bar() -> None:
    a, _ = random_spd(6, seed=2)
    calls, matvec = recording(a)
    estimate, se = logdet_slq(matvec, 6, num_probes=1, lanczos_steps=50)
    assert len(calls) <= 6 and calls[0].shape == (6, 1)
    assert math.isnan(se) and math.isfinite(estimate)


@pytest.mark.parametrize(("batch", "dim", "alpha"), [(8, 64, 0.5), (40, 24, 0.05)])
def test_gram_version_matches_the_exact_log_det(batch: int, dim: int, alpha: float) -> None:
    z = torch.tensor(np.random.default_rng(dim).normal(size=(batch, dim)), dtype=torch.float32)
    z64 = z.to(torch.float64)
    exact = exact_logdet(torch.eye(dim, dtype=torch.float64) + alpha * z64.T @ z64)
    gen = torch.Generator().manual_seed(1)
    estimate, se = logdet_slq_gram(z, alpha, num_probes=64, lanczos_steps=30, generator=gen)
    assert abs(estimate - exact) < 3 * se
    # with all dim steps (exact quadrature) and many probes the relative error is small
    gen = torch.Generator().manual_seed(2)
    estimate, se = logdet_slq_gram(z, alpha, num_probes=400, lanczos_steps=dim, generator=gen)
    assert abs(estimate - exact) < 0.1 * abs(exact) and se < 0.05 * abs(exact)


def test_bad_inputs_raise_value_errors_naming_the_argument() -> None:
    a, _ = random_spd(5, seed=0)
    good = lambda v: a @ v  # noqa: E731
    with pytest.raises(ValueError, match="matvec"):
        logdet_slq("A", 5)  # type: ignore[arg-type]
    bad = [("dim", {"dim": 0}), ("num_probes", {"num_probes": 0}), ("lanczos_steps", {"lanczos_steps": 2.5})]
    for name, kwargs in bad:
        with pytest.raises(ValueError, match=name):
            logdet_slq(good, **{"dim": 5, **kwargs})
    with pytest.raises(ValueError, match="num_probes"):
        logdet_slq(good, 5, num_probes=True)
    with pytest.raises(ValueError, match="matvec.*shape"):
        logdet_slq(lambda v: v[:3], 5)
    with pytest.raises(ValueError, match="matvec.*finite"):
        logdet_slq(lambda v: v * float("nan"), 5)
    with pytest.raises(ValueError, match="matvec.*positive-definite"):
        logdet_slq(lambda v: -(a @ v), 5)
    with pytest.raises(ValueError, match="alpha"):
        logdet_slq_gram(torch.randn(4, 3), alpha=0.0)
    with pytest.raises(ValueError, match="z"):
        logdet_slq_gram(torch.randn(3), alpha=1.0)

"""isotropy: fixed-trace log-det maximization equalizes the spectrum; the covariance penalty only decorrelates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.experiments.isotropy import anisotropic_start, covariance_stats, fixed_trace
from ._helpers import run_quick


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(3, 20), dim=st.integers(2, 6), trace=st.floats(0.1, 50.0))
def test_fixed_trace_centers_and_sets_the_trace(seed: int, batch: int, dim: int, trace: float) -> None:
    z = torch.from_numpy(np.random.default_rng(seed).normal(size=(batch, dim)) + 3.0)
    zn = fixed_trace(z, trace).numpy()
    np.testing.assert_allclose(zn.mean(axis=0), 0.0, atol=1e-10)
    assert np.trace(np.cov(zn, rowvar=False, ddof=1)) == pytest.approx(trace, rel=1e-10)


def test_covariance_stats_against_numpy() -> None:
    z = np.random.default_rng(1).normal(size=(50, 4)) @ np.array(
        [[2.0, 0.3, 0, 0], [0, 1.0, 0.5, 0], [0, 0, 0.7, 0], [0, 0, 0.2, 0.4]])
    z = z - z.mean(axis=0)
    sigma = z.T @ z / 49
    lam = np.linalg.eigvalsh(sigma)
    off = np.abs(sigma - np.diag(np.diag(sigma))).max() / np.diag(sigma).mean()
    t = np.trace(sigma)
    stats = covariance_stats(torch.from_numpy(z))
    assert stats["condition_number"] == pytest.approx(lam.max() / lam.min(), rel=1e-9)
    assert stats["max_offdiag_ratio"] == pytest.approx(off, rel=1e-9)
    assert stats["logdet_gap"] == pytest.approx(4 * math.log(t / 4) - np.log(lam).sum(), rel=1e-9)


def test_isotropic_batch_has_no_gap() -> None:
    z = torch.cat([torch.eye(3), -torch.eye(3)]).double()  # covariance (2/5) I
    stats = covariance_stats(z)
    assert stats["condition_number"] == pytest.approx(1.0)
    assert stats["max_offdiag_ratio"] == pytest.approx(0.0, abs=1e-15)
    assert stats["logdet_gap"] == pytest.approx(0.0, abs=1e-12)


def test_start_is_correlated_and_anisotropic() -> None:
    stats = covariance_stats(fixed_trace(anisotropic_start(64, 8, seed=0), 8.0))
    assert stats["condition_number"] > 20 and stats["max_offdiag_ratio"] > 0.1


def test_quick_experiment(tmp_path) -> None:
    data = run_quick("isotropy", tmp_path)
    assert data["passed"], data["claims"]
    final = data["numbers"]["final"]
    start = data["numbers"]["start"]
    cr, cov = final["coding rate (maximized)"], final["covariance penalty"]
    both = final["covariance + 25 variance hinge"]
    assert start["condition_number"] > 20
    assert cr["condition_number"] < 1.01 and cr["max_offdiag_ratio"] < 1e-3 and abs(cr["logdet_gap"]) < 1e-6
    assert cov["max_offdiag_ratio"] < 1e-3 and cov["condition_number"] > 2  # decorrelated, not equalized
    assert both["condition_number"] < 1.25
    spectrum = data["numbers"]["spectra"]["coding rate (maximized)"]
    assert sum(spectrum) == pytest.approx(data["numbers"]["dim"], rel=1e-9)  # the trace stayed fixed

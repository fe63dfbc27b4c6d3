"""taylor: the gap between the coding rate and its Taylor surrogate, checked against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.experiments.taylor import fit_slope, taylor_sweep
from ._helpers import run_quick


def reference_terms(z: np.ndarray, x: float) -> dict[str, float]:
    """R, T, V, C and a^3 tr S^3 / 6 from the formulas, float64 numpy, S of the centered z."""
    z = z - z.mean(axis=0)
    batch, dim = z.shape
    s = z.T @ z / batch
    lam = np.linalg.eigvalsh(s)
    a = x / lam.max()
    off = s - np.diag(np.diag(s))
    return {
        "coding_rate": 0.5 * float(np.sum(np.log1p(a * lam))),
        "taylor": 0.5 * (a * np.trace(s) - a**2 / 2 * np.trace(s @ s)),
        "variance_part": 0.5 * (a * np.sum(np.diag(s)) - a**2 / 2 * np.sum(np.diag(s) ** 2)),
        "covariance_part": -(a**2) / 4 * float(np.sum(off**2)),
        "leading": a**3 * float(np.sum(lam**3)) / 6,
    }


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(3, 12), dim=st.integers(1, 6),
       x=st.floats(1e-3, 10.0))
def test_sweep_matches_the_formulas(seed: int, batch: int, dim: int, x: float) -> None:
    z = np.random.default_rng(seed).normal(size=(batch, dim)) * np.linspace(0.5, 2.0, dim)
    got = taylor_sweep(torch.from_numpy(z), [x])
    expected = reference_terms(z, x)
    for key, value in expected.items():
        assert got[key][0] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert got["gap"][0] == pytest.approx(expected["coding_rate"] - expected["taylor"], rel=1e-6, abs=1e-12)


def test_gap_tends_to_its_leading_term() -> None:
    z = np.random.default_rng(0).normal(size=(40, 5))
    sweep = taylor_sweep(torch.from_numpy(z), [1e-3, 1e-2])
    for gap, leading in zip(sweep["gap"], sweep["leading"]):
        assert gap / leading == pytest.approx(1.0, abs=0.05)


def test_fit_slope_of_a_power_law() -> None:
    x = [10 ** (-3 + k / 4) for k in range(9)]
    assert fit_slope(x, [7.0 * v**3 for v in x]) == pytest.approx(3.0, abs=1e-12)
    assert math.isnan(fit_slope([1.0], [1.0]))


def test_quick_experiment_reproduces_slope_three(tmp_path) -> None:
    data = run_quick("taylor", tmp_path)
    assert data["passed"], data["claims"]
    numbers = data["numbers"]
    assert len(numbers) == 2  # random and trained embeddings
    for name, entry in numbers.items():
        assert 2.7 <= entry["slope"] <= 3.3, name
        assert entry["relative_gap_at_x=0.001"] < 1e-3 < entry["relative_gap_at_x=10"]
        assert entry["taylor_split_max_relative_error"] < 1e-9
    # the random set is regenerated here and its gap recomputed independently
    random = numbers["random (Gaussian)"]
    z = torch.randn(random["batch"], random["dim"], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sweep = random["sweep"]
    for index in (0, len(sweep["x"]) // 2, len(sweep["x"]) - 1):
        reference = reference_terms(z.numpy(), sweep["x"][index])
        assert sweep["gap"][index] == pytest.approx(reference["coding_rate"] - reference["taylor"], rel=1e-6)

"""Monitor: every N steps, the diagnostics functions' own numbers, as floats."""

from __future__ import annotations

import math

import pytest
import torch

from covssl import diagnostics as d
from covssl.diagnostics import Monitor


def test_the_monitor_reports_the_diagnostics_functions_numbers() -> None:
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(300, 128, generator=g)
    z2 = z1 + 0.3 * torch.randn(300, 128, generator=g)
    metrics = Monitor(every=1).update(0, z1, z2)
    iso = d.isotropy(z1)
    fit = d.alpha_req(z1)
    expected = {
        "std_of_normalized": d.std_of_normalized(z1), "std_of_normalized_healthy": 1 / math.sqrt(128),
        "effective_rank": d.effective_rank(z1), "condition_number": iso["condition_number"],
        "eigenvalue_entropy": iso["eigenvalue_entropy"], "rankme": d.rankme(z1), "nesum": d.nesum(z1),
        "stable_rank": d.stable_rank(z1), "w2_uniformity": d.w2_uniformity(z1),
        "alpha_req": fit["alpha"], "alpha_req_r2": fit["r2"], "lidar": d.lidar([z1, z2]),
    }
    assert metrics == expected


def test_only_due_steps_compute_and_history_keeps_them() -> None:
    monitor = Monitor(every=3)
    results = [monitor.update(step, torch.randn(16, 4)) for step in range(7)]
    assert [r is not None for r in results] == [True, False, False, True, False, False, True]
    assert [h["step"] for h in monitor.history] == [0.0, 3.0, 6.0]
    assert monitor.latest == {k: v for k, v in monitor.history[-1].items() if k != "step"}


def test_collapse_gives_float_infinities_that_compare() -> None:
    metrics = Monitor(every=1).compute(torch.ones(32, 8))
    assert metrics["condition_number"] == math.inf and metrics["condition_number"] > 1e3
    assert metrics["effective_rank"] == 0.0 and all(isinstance(v, float) for v in metrics.values())
    assert "lidar" not in metrics


def test_the_monitor_does_not_touch_autograd() -> None:
    z = torch.randn(16, 4, requires_grad=True)
    Monitor(every=1).compute(z * 2)
    assert z.grad is None


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_every_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="every"):
        Monitor(every=bad)


def test_bad_views_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Monitor().compute()
    with pytest.raises(ValueError, match="^z: expected"):
        Monitor().compute(torch.ones(4))

"""The collapse verdict's thresholds."""

from __future__ import annotations

import math

import pytest

from covssl.diagnostics import verdict


def _report(std_ratio: float, erank: float, batch: int = 65, dim: int = 16) -> dict:
    return {"std_of_normalized": std_ratio / math.sqrt(dim), "effective_rank": erank, "batch": batch, "dim": dim}


@pytest.mark.parametrize(
    ("std_ratio", "erank", "expected"),
    [
        (0.9, 12.0, "healthy"),
        (0.09, 12.0, "collapsed"),  # std below a tenth of 1/sqrt(d)
        (0.9, 1.2, "collapsed"),  # one direction
        (0.3, 12.0, "partially collapsed"),
        (0.9, 1.5, "partially collapsed"),  # < 0.1 * min(B - 1, d) = 1.6 directions
        (0.9, 1.7, "healthy"),
    ],
)
def test_verdict_thresholds(std_ratio: float, erank: float, expected: str) -> None:
    assert verdict(_report(std_ratio, erank)) == expected


def test_verdict_of_one_dimension_reads_the_std_only() -> None:
    assert verdict(_report(0.9, 1.0, dim=1)) == "healthy"

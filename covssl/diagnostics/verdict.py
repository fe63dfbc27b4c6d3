"""The collapse verdict: "healthy", "partially collapsed" or "collapsed", from a collapse report.

Two indicators decide it. SimSiam's std of the l2-normalized embeddings per dimension is about
1/sqrt(d) when healthy and 0 when collapsed (Chen & He 2021); the effective rank (Roy & Vetterli
2007) counts the directions the covariance uses, at most min(B - 1, d) for a batch of B:

    collapsed            if std * sqrt(d) < 0.1, or erank < 1.5 (when the batch has room for 2+)
    partially collapsed  if std * sqrt(d) < 0.5, or erank < 0.1 * min(B - 1, d)
    healthy              otherwise

[0] Chen & He, 2021, "Exploring Simple Siamese Representation Learning", https://arxiv.org/abs/2011.10566
[1] Roy, Vetterli, 2007, "The effective rank: a measure of effective dimensionality",
    EUSIPCO 2007, https://infoscience.epfl.ch/record/110188/files/RoyV07.pdf
"""

from __future__ import annotations

import math
from typing import Any

THRESHOLDS = {"collapsed_std_ratio": 0.1, "collapsed_effective_rank": 1.5, "partial_std_ratio": 0.5,
              "partial_effective_rank_fraction": 0.1}


def verdict(report: dict[str, Any]) -> str:
    """"healthy", "partially collapsed" or "collapsed" from a collapse_report (thresholds above).

    Args:
        report: a dict with "std_of_normalized", "effective_rank", "batch" and "dim", as returned
            by :func:`covssl.diagnostics.collapse_report`.

    Returns:
        The verdict string.

    Examples:
        >>> verdict({"std_of_normalized": 0.0, "effective_rank": 0.0, "batch": 8, "dim": 4})
        'collapsed'
    """
    dim, batch = int(report["dim"]), int(report["batch"])
    std_ratio = float(report["std_of_normalized"]) * math.sqrt(dim)
    erank = float(report["effective_rank"])
    room = min(batch - 1, dim)  # the most directions the covariance of this batch can use
    if std_ratio < THRESHOLDS["collapsed_std_ratio"] or (room >= 2 and erank < THRESHOLDS["collapsed_effective_rank"]):
        return "collapsed"
    if std_ratio < THRESHOLDS["partial_std_ratio"] or erank < THRESHOLDS["partial_effective_rank_fraction"] * room:
        return "partially collapsed"
    return "healthy"

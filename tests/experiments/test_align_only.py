"""align-only (quick mode): alignment alone collapses, every regularized objective does not."""

from __future__ import annotations

import math

from covssl.experiments.align_only import ALIGN_ONLY, REGULARIZED
from ._helpers import run_quick


def test_quick_experiment(tmp_path) -> None:
    data = run_quick("align-only", tmp_path)
    numbers = data["numbers"]
    root_d = math.sqrt(numbers["setup"]["dim"])
    final = numbers["final"]
    assert set(final) == set(ALIGN_ONLY) | set(REGULARIZED)
    for name in ALIGN_ONLY:
        assert final[name]["verdict"] != "healthy", name
        assert final[name]["std_of_normalized"] * root_d < 0.3, name
        assert float(final[name]["center_residual_ratio"]) > 2.0, name
    assert final["cosine alone"]["effective_rank"] < 3.0  # on the sphere the collapse is complete
    for name in REGULARIZED:
        assert final[name]["verdict"] != "collapsed", name
        assert final[name]["std_of_normalized"] * root_d > 0.5, name
        assert final[name]["effective_rank"] > 2 * final["cosine alone"]["effective_rank"], name
        assert float(final[name]["center_residual_ratio"]) < 1.0, name
    assert min(final[n]["knn_top1"] for n in REGULARIZED) > max(final[n]["knn_top1"] for n in ALIGN_ONLY)
    assert data["passed"], data["claims"]

"""simsiam-collapse (quick mode): without stop-gradient the run collapses, SimSiam itself does not."""

from __future__ import annotations

import math

from ._helpers import run_quick


def test_quick_experiment(tmp_path) -> None:
    data = run_quick("simsiam-collapse", tmp_path)
    numbers = data["numbers"]
    dim = numbers["setup"]["dim"]
    final = numbers["final"]
    no_sg, full = final["no stop-gradient"], final["predictor + stop-gradient"]
    # the seed's claim, on the measured numbers
    assert no_sg["std_of_normalized"] < 0.1 / math.sqrt(dim)
    assert no_sg["verdict"] == "collapsed"
    assert float(no_sg["center_residual_ratio"]) > 2.0  # the center dominates the residual
    assert full["std_of_normalized"] > 0.5 / math.sqrt(dim)
    assert full["verdict"] == "healthy" and float(full["center_residual_ratio"]) < 1.0
    # the curves start from the same model and the collapse develops over training
    history = numbers["history"]["no stop-gradient"]
    assert history[0]["std_of_normalized"] == numbers["history"]["predictor + stop-gradient"][0]["std_of_normalized"]
    assert history[0]["std_of_normalized"] > 0.5 / math.sqrt(dim) > history[-1]["std_of_normalized"]
    assert data["passed"], data["claims"]

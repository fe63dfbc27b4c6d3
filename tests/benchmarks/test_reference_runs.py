"""The recorded per-step losses of the seeded reference runs still come out of today's code.

The recording (benchmarks/results/reference_runs.json) is exact on the machine that made it; here
the offline default is retrained on whatever CPU runs the tests. Another CPU rounds differently,
and training amplifies the difference step by step (measured between an AMD EPYC and an Intel
Xeon: 1e-7 relative at steps 1-2, 1e-4 at step 4, 8% at step 22). So the first two steps, which
already depend on the initialization, the views, the objective and one optimizer update, are held
to 1e-5, and the later ones only to the trajectory (25%). The exact check is
``benchmarks/reference_runs.py --compare`` against a recording made on the same machine.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "reference_runs.json"


def test_the_reference_file_covers_the_default_every_method_and_cifar(load_benchmark) -> None:
    from covssl.methods import list_methods

    recorded = json.loads(REFERENCE.read_text())
    assert {"digits", "cifar10", *(f"method-{m}" for m in list_methods())} <= set(recorded)


def test_differences_name_the_first_differing_number(load_benchmark) -> None:
    script = load_benchmark("reference_runs")
    rows = [{"step": "1", "loss": "2.5"}, {"step": "2", "loss": "2.0"}]
    assert script.differences({"a": rows}, {"a": rows}) == []
    changed = [rows[0], {"step": "2", "loss": "2.1"}]
    assert script.differences({"a": rows}, {"a": changed}) == ["a: step 2 loss = 2.1, the reference has 2.0"]
    assert script.differences({"a": rows}, {"a": rows[:1]}) == ["a: 1 steps, the reference has 2"]


def test_the_offline_default_reproduces_its_recorded_losses(load_benchmark, tmp_path: Path) -> None:
    script = load_benchmark("reference_runs")
    expected = json.loads(REFERENCE.read_text())["digits"]
    rows = script.run_one(script.reference_runs(None)["digits"], tmp_path / "digits")
    assert len(rows) == len(expected) == 22
    for want, got in zip(expected, rows):
        for key, value in want.items():
            if key in ("step", "epoch"):
                assert got[key] == value
            else:
                tolerance = 1e-5 if int(want["step"]) <= 2 else 0.25
                assert math.isclose(float(got[key]), float(value), rel_tol=tolerance, abs_tol=1e-6), (want["step"], key)

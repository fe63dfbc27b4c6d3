"""Runs benchmarks/distributed.py once in --quick mode (1 process, then torchrun with 2) and checks its CSV."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "distributed.py"
sys.path.insert(0, str(BENCHMARK.parent))  # the script imports `_common`, as when run


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("covssl_benchmark_distributed", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_benchmark_writes_a_consistent_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load_benchmark()
    out = tmp_path / "distributed.csv"
    returned = bench.main(["--quick", "--out", str(out)])
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == bench.COLUMNS
        rows = list(reader)
    assert len(rows) == len(returned) == 2
    assert [(int(r["world_size"]), int(r["threads_per_process"])) for r in rows] == [(1, 1), (2, 1)]
    baseline = float(rows[0]["step_ms_median"])
    for row in rows:
        world, local, dim = int(row["world_size"]), int(row["local_batch"]), int(row["dim"])
        assert world * local == int(row["global_batch"]) == bench.QUICK["batch"]
        step_ms = float(row["step_ms_median"])
        assert 0 < float(row["step_ms_min"]) <= step_ms
        assert math.isclose(float(row["images_per_s"]), 1000 * int(row["global_batch"]) / step_ms, rel_tol=0.01)
        assert math.isclose(float(row["speedup"]), baseline / step_ms, rel_tol=0.02, abs_tol=0.01)
        assert int(row["gather_bytes_per_rank"]) == 2 * local * dim * 4 * (world - 1)
        assert int(row["grad_bytes"]) == 4 * int(row["params"]) > 0
        assert row["torch"] and row["machine"] and int(row["threads"]) >= 1 and row["date"]
    assert float(rows[1]["gather_ms"]) > 0 and float(rows[1]["grad_allreduce_ms"]) > 0  # measured, not defaulted
    assert "processes x threads" in capsys.readouterr().out

"""Runs benchmarks/objective_overhead.py once in --quick mode."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "objective_overhead.py"


def test_quick_overhead_benchmark_covers_every_method(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("covssl_benchmark_overhead", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--quick", "--out", str(tmp_path / "o.csv")])
    from covssl.methods import list_methods

    assert [r["method"] for r in rows] == list_methods()
    for row in rows:
        assert row["step_ms"] > 0 and 0 < row["objective_share_pct"]
    assert (tmp_path / "o.csv").read_text().count("\n") == len(rows) + 1

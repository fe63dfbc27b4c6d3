"""Runs benchmarks/objective_overhead.py once in --quick mode."""

from __future__ import annotations

from pathlib import Path


def test_quick_overhead_benchmark_covers_every_method(tmp_path: Path, load_benchmark) -> None:
    module = load_benchmark("objective_overhead")
    rows = module.main(["--quick", "--out", str(tmp_path / "o.csv")])
    from covssl.methods import list_methods

    assert [r["method"] for r in rows] == list_methods()
    for row in rows:
        assert row["step_ms"] > 0 and 0 < row["objective_share_pct"]
    assert (tmp_path / "o.csv").read_text().count("\n") == len(rows) + 1

"""Runs benchmarks/layout_precision.py once in --quick mode."""

from __future__ import annotations

import csv
from pathlib import Path


def test_quick_layout_precision_benchmark_writes_every_setting(tmp_path: Path, load_benchmark) -> None:
    module = load_benchmark("layout_precision")
    out = tmp_path / "layout.csv"
    rows = module.main(["--quick", "--out", str(out)])
    assert [(r["precision"], r["layout"]) for r in rows] == [
        ("fp32", "NCHW"), ("fp32", "NHWC"), ("bf16", "NCHW"), ("bf16", "NHWC")]
    assert rows[0]["speedup_vs_fp32_nchw"] == 1.0
    with open(out, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 4
    for row in written:
        assert float(row["images_per_s"]) > 0 and row["machine"] and row["torch"] and row["date"]

"""Runs benchmarks/augment.py --quick once and checks the CSV it writes."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_csv(tmp_path: Path) -> None:
    out = tmp_path / "augment.csv"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "augment.py"), "--quick", "--threads", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    for column in ("machine", "torch", "threads", "date", "batch_size", "pipeline", "images_per_s", "speedup_vs_pil"):
        assert column in rows[0]
    pipelines = {r["pipeline"] for r in rows}
    assert {"pil", "covssl"} <= pipelines
    sizes = {int(r["batch_size"]) for r in rows}
    assert len(sizes) >= 2 and len(rows) == len(sizes) * len(pipelines)
    for r in rows:
        assert float(r["images_per_s"]) > 0 and int(r["threads"]) == 1
        if r["pipeline"] == "pil":
            assert float(r["speedup_vs_pil"]) == 1.0
    assert "vs PIL" in proc.stdout  # the printed table

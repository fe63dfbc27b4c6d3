"""Runs benchmarks/label_free_cost.py --quick once and checks the CSV it writes."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_the_cost_ratios(tmp_path: Path) -> None:
    out = tmp_path / "cost.csv"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "label_free_cost.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["machine"] and rows[0]["date"]
    assert 0 < float(rows[0]["per_epoch_metrics_share_of_epoch"]) < 1
    assert float(rows[0]["probe_share_of_epoch"]) > 0

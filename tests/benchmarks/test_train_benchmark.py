"""Runs benchmarks/train_cifar10.py once in --quick mode (digits, every method, one epoch)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "train_cifar10.py"


def test_quick_training_benchmark_writes_every_method(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("covssl_benchmark_train", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "train.csv"
    rows = module.main(["--quick", "--out", str(out), "--runs", str(tmp_path / "runs")])
    from covssl.methods import list_methods

    assert [r["method"] for r in rows] == list_methods()
    with open(out, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == len(rows)
    for row in written:
        assert 0 <= float(row["knn_top1"]) <= 100
        assert float(row["images_per_s"]) > 0
        assert row["torch"] and row["date"]

"""Runs benchmarks/train_cifar10.py once in --quick mode (digits, every method, one epoch)."""

from __future__ import annotations

import csv
from pathlib import Path


def test_quick_training_benchmark_writes_every_method(tmp_path: Path, load_benchmark) -> None:
    module = load_benchmark("train_cifar10")
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

"""Runs benchmarks/objectives.py once in --quick mode and checks the CSV it writes."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch


def test_quick_benchmark_writes_a_consistent_csv(tmp_path: Path, capsys, load_benchmark) -> None:
    bench = load_benchmark("objectives")
    out = tmp_path / "objectives.csv"
    returned = bench.main(["--quick", "--out", str(out), "--repeats", "1"])
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == bench.COLUMNS
        rows = list(reader)
    names = {name for name, *_ in bench.REGULARIZERS}
    assert names == {
        "coding_rate", "covariance_penalty", "barlow_twins_loss", "taylor_coding_rate", "frossl_loss", "mec_loss",
        "matrix_ssl_loss", "correlation_penalty", "von_neumann_entropy", "w2_uniformity",
    }
    assert len(rows) == len(returned) == len(bench.grid(quick=True)) * len(names)
    for row in rows:
        auto_ms, naive_ms, speedup = float(row["auto_ms"]), float(row["naive_ms"]), float(row["speedup"])
        assert auto_ms > 0 and naive_ms > 0
        assert math.isclose(speedup, naive_ms / auto_ms, rel_tol=0.02, abs_tol=0.01)
        # The d x d reference and the auto path compute the same number.
        tolerance = 1e-4 if row["dtype"] == "float32" else 1e-10
        if row["regularizer"] == "w2_uniformity":  # the d x d reference sums sqrt of rounded zero eigenvalues
            tolerance = 1e-3 if row["dtype"] == "float32" else 1e-7
        assert float(row["rel_diff"]) < tolerance, row
        assert row["auto_path"] == ("sample" if int(row["B"]) < int(row["d"]) else "feature")
        assert row["torch"] and row["machine"] and int(row["threads"]) >= 1 and row["date"]
    assert "speedup naive/auto" in capsys.readouterr().out


def test_naive_references_match_the_formulas(load_benchmark) -> None:
    # Guard against a benchmark that is fast because its d x d reference computes something else.
    bench = load_benchmark("objectives")
    z1, z2 = bench._inputs(6, 9, 2, torch.float64)
    zc = (z1 - z1.mean(0)).numpy()
    cov = zc.T @ zc / 5
    off = cov * (1 - np.eye(9))
    assert math.isclose(bench.naive_covariance_penalty(z1).item(), float((off**2).sum() / 9), rel_tol=1e-12)
    alpha = 9 / (6 * bench.EPS_CODING**2)
    _, logdet = torch.linalg.slogdet(torch.eye(9, dtype=torch.float64) + alpha * z1.T @ z1)
    assert math.isclose(bench.naive_coding_rate(z1).item(), 0.5 * logdet.item(), rel_tol=1e-12)
    expected = bench.barlow_twins_loss(z1, z2, bench.LAMBD)["loss"].item()  # tested against loops elsewhere
    assert math.isclose(bench.naive_barlow_twins(z1, z2).item(), expected, rel_tol=1e-10)


@pytest.mark.parametrize(
    "argv", [["--points", "5x5"], ["--points", "512by4096"], ["--repeats", "0"], ["--threads", "0"], ["--clock", "gpu"]]
)
def test_bad_arguments_are_rejected_before_any_work(argv: list[str], tmp_path: Path, capsys, load_benchmark) -> None:
    bench = load_benchmark("objectives")
    with pytest.raises(SystemExit):
        bench.main([*argv, "--out", str(tmp_path / "never.csv")])
    assert not (tmp_path / "never.csv").exists()
    assert argv[0] in capsys.readouterr().err

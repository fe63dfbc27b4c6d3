"""covssl compare: reading run folders, rank correlations against scipy-free references, the CLI."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from covssl.cli import app
from covssl.experiments.compare import compare_runs, rank_correlation, read_run


def fake_run(root: Path, name: str, knn: float, metrics: dict[str, float], method: str = "vicreg",
             linear: float | None = 0.5, epochs: list[dict[str, float]] | None = None,
             probe: dict[str, float] | None = None) -> Path:
    """A run folder as covssl train leaves it: config.yaml, results.json, epochs.csv."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"method:\n  name: {method}\n  objective: null\n")
    results = {"knn_top1": {"trained": knn}, "linear_probe_top1": linear, "label_free": probe or {}}
    (run_dir / "results.json").write_text(json.dumps(results))
    rows = epochs or [{"epoch": 0, **metrics}]
    fields = sorted({key for row in rows for key in row})
    with open(run_dir / "epochs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return run_dir


# ------------------------------------------------------------------ rank correlation
def ref_spearman(x: list[float], y: list[float]) -> float:
    """1 - 6 sum d^2 / (n (n^2 - 1)) for untied data."""
    rank = lambda v: {value: i for i, value in enumerate(sorted(v))}  # noqa: E731
    rx, ry = rank(x), rank(y)
    n = len(x)
    return 1 - 6 * sum((rx[a] - ry[b]) ** 2 for a, b in zip(x, y)) / (n * (n * n - 1))


def ref_kendall(x: list[float], y: list[float]) -> float:
    """(concordant - discordant) / (n choose 2) for untied data."""
    signs = [math.copysign(1, (a1 - a2) * (b1 - b2)) for (a1, b1), (a2, b2) in itertools.combinations(zip(x, y), 2)]
    return sum(signs) / len(signs)


@pytest.mark.parametrize("y", [[3.0, 1.0, 4.0, 1.5, 9.0, 2.6], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
def test_rank_correlation_matches_the_textbook_formulas(y: list[float]) -> None:
    x = [0.1, 0.5, 0.2, 0.9, 0.3, 0.7]
    corr = rank_correlation(x, y)
    assert corr["spearman"] == pytest.approx(ref_spearman(x, y))
    assert corr["kendall"] == pytest.approx(ref_kendall(x, y))
    assert corr["n"] == 6


def test_rank_correlation_is_undefined_for_few_or_constant_values() -> None:
    assert math.isnan(rank_correlation([1.0, 2.0], [1.0, 2.0])["spearman"])
    assert math.isnan(rank_correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["kendall"])
    corr = rank_correlation([1.0, math.nan, 2.0, 3.0], [1.0, 5.0, 2.0, 3.0])  # NaN pairs dropped
    assert corr == {"spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0), "n": 3}
    assert rank_correlation([1.0, 2.0, math.inf], [1.0, 2.0, 3.0])["spearman"] == pytest.approx(1.0)


# ------------------------------------------------------------------------ the runs
def test_across_runs_a_metric_that_orders_runs_like_knn_correlates_one(tmp_path: Path) -> None:
    runs = [read_run(fake_run(tmp_path, f"r{i}", knn=0.1 * i, linear=0.2 * i,
                              metrics={"rankme": 10.0 * i, "w2_uniformity": 1.0 - 0.1 * i, "nesum": 5.0 - i}))
            for i in range(1, 5)]
    comparison = compare_runs(runs)
    assert comparison["across"]["rankme"]["knn"] == {"spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0),
                                                     "n": 4}
    assert comparison["across"]["w2_uniformity"]["linear"]["spearman"] == pytest.approx(-1.0)
    assert comparison["across"]["nesum"]["knn"]["kendall"] == pytest.approx(-1.0)
    assert comparison["higher_is_better"]["w2_uniformity"] is False
    assert "lidar" not in comparison["across"] and comparison["warnings"] == []


def test_the_final_value_is_the_probe_in_results_json_or_the_last_logged_row(tmp_path: Path) -> None:
    epochs = [{"epoch": 0, "rankme": 1.0, "knn_top1": 0.2, "probe_lidar": 3.0},
              {"epoch": 1, "rankme": 2.0, "knn_top1": 0.3, "probe_lidar": 4.0},
              {"epoch": 2, "rankme": 5.0}]
    run = read_run(fake_run(tmp_path, "a", knn=0.4, metrics={}, epochs=epochs, probe={"probe_lidar": 7.0}))
    assert run.final == {"rankme": 5.0, "probe_lidar": 7.0}
    assert run.knn == 0.4 and run.linear == 0.5 and run.method == "vicreg"
    other = read_run(fake_run(tmp_path, "b", knn=0.1, metrics={"rankme": 1.0}))
    within = compare_runs([run, other])["within"]
    # over epochs: (3, 0.2), (4, 0.3) from epochs.csv, then the final model (7, 0.4)
    assert within["a"]["probe_lidar"] == {"spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0), "n": 3}


def test_mixed_methods_and_too_few_runs_warn(tmp_path: Path) -> None:
    a = read_run(fake_run(tmp_path, "a", 0.5, {"rankme": 1.0}))
    b = read_run(fake_run(tmp_path, "b", 0.6, {"rankme": 2.0}, method="simclr"))
    warnings = compare_runs([a, b])["warnings"]
    assert any("mix methods (simclr, vicreg)" in w for w in warnings)
    assert any("at least 3 runs" in w for w in warnings)
    with pytest.raises(ValueError, match="at least 2 run folders"):
        compare_runs([a])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "results.json").unlink(), "no results.json"),
        (lambda d: (d / "results.json").write_text("{not json"), "results.json: not valid JSON"),
        (lambda d: (d / "results.json").write_text("[1, 2]"), "expected a JSON object, got list"),
        (lambda d: (d / "config.yaml").write_text("method: [unclosed"), "config.yaml: not a run configuration"),
        (lambda d: (d / "config.yaml").write_text("train: {}\n"), "config.yaml: no method.name"),
        (lambda d: (d / "config.yaml").write_text("!!python/object/apply:os.system ['echo hacked']"),
         "config.yaml: not a run configuration"),
        (lambda d: (d / "results.json").write_bytes(b"\xff\xfe\x00"), "results.json: unreadable"),
    ],
)
def test_damaged_run_folders_are_clear_errors(tmp_path: Path, damage, message: str) -> None:
    run_dir = fake_run(tmp_path, "bad", 0.5, {"rankme": 1.0})
    damage(run_dir)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        read_run(run_dir)


# ------------------------------------------------------------------------------ CLI
def test_cli_writes_the_table_json_csv_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    dirs = [fake_run(tmp_path / "runs", f"r{i}", knn=0.1 * i, metrics={},
                     epochs=[{"epoch": 0, "rankme": 0.5 * i, "knn_top1": 0.05 * i},
                             {"epoch": 1, "rankme": float(i), "nesum": float(-i)}])
            for i in range(1, 4)]
    out = tmp_path / "cmp"
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["compare", *map(str, dirs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "+1.00 / +1.00" in result.output and "-1.00 / -1.00" in result.output
    saved = json.loads((out / "compare.json").read_text())
    assert saved["across"]["rankme"]["knn"]["spearman"] == pytest.approx(1.0)
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [row["run"] for row in rows] == ["r1", "r2", "r3"] and rows[2]["rankme"] == "3.0"
    assert (out / "compare_across_runs.png").stat().st_size > 0 and (out / "compare_within_runs.png").is_file()


@pytest.mark.parametrize("bad", ["missing", "one"])
def test_cli_bad_input_is_exit_2_and_one_line(tmp_path: Path, bad: str) -> None:
    good = fake_run(tmp_path, "good", 0.5, {"rankme": 1.0})
    args = [str(good), str(tmp_path / "nope")] if bad == "missing" else [str(good)]
    result = CliRunner().invoke(app, ["compare", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1

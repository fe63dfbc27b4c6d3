"""``covssl compare``: the label-free metrics of finished runs against their accuracy, ranked.

    covssl compare runs/a runs/b runs/c --out cmp/

Writes compare.json, compare.csv and two PNGs (each metric against the final kNN and linear-probe
accuracy across runs, and against kNN over each run's epochs), and prints the runs and the rank
correlations (:mod:`covssl.experiments.compare`). Bad input exits with code 2 and one line.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from covssl.analysis_cli import _cell, _fail, console


def _correlation_cell(corr: dict[str, float]) -> str:
    return "-" if math.isnan(corr["spearman"]) else f"{corr['spearman']:+.2f} / {corr['kendall']:+.2f}"


def _write_compare_csv(comparison: dict[str, Any], path: Path) -> None:
    metrics = list(comparison["across"])
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "method", "knn", "linear", *metrics])
        for run in comparison["runs"]:
            writer.writerow([run["name"], run["method"], run["knn"], run["linear"],
                             *(run["final"].get(metric, "") for metric in metrics)])


def compare(
    run_dirs: list[Path] = typer.Argument(..., help="two or more finished run folders"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for compare.json, compare.csv and the PNG plots"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write the PNG plots (needs matplotlib)"),
) -> None:
    """Label-free metrics of finished runs against their kNN and linear-probe accuracy, with rank correlations."""
    from covssl.experiments.compare import compare_runs, comparison_panels, read_run
    from covssl.plots import PlotDependencyError, plot_panels

    try:
        runs = [read_run(run_dir) for run_dir in run_dirs]
        if len({run.name for run in runs}) < len(runs):  # name runs by their full paths then
            for run in runs:
                run.name = str(run.run_dir)
        comparison = compare_runs(runs)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
        return
    out.mkdir(parents=True, exist_ok=True)
    from covssl.diagnostics import json_safe

    (out / "compare.json").write_text(json.dumps(json_safe(comparison), indent=2, allow_nan=False) + "\n")
    _write_compare_csv(comparison, out / "compare.csv")
    written = ["compare.json", "compare.csv"]
    if plots:
        try:
            across, within = comparison_panels(runs, comparison)
            plot_panels(across, out / "compare_across_runs.png", columns=5, shared_legend=True,
                        title="final label-free metrics vs final accuracy (one point per run)")
            plot_panels(within, out / "compare_within_runs.png", columns=5, shared_legend=True,
                        title="label-free metrics vs kNN over each run's epochs")
            written += ["compare_across_runs.png", "compare_within_runs.png"]
        except PlotDependencyError as error:
            _fail(f"{error} (or pass --no-plots); compare.json was written to {out}")
    metrics = list(comparison["across"])
    table = Table(title="final accuracy and label-free metrics of each run")
    table.add_column("", no_wrap=True)
    for run in comparison["runs"]:
        table.add_column(escape(run["name"]), justify="right")
    table.add_row("method", *(escape(run["method"]) for run in comparison["runs"]))
    for key, label in (("knn", "kNN top-1"), ("linear", "linear top-1")):
        table.add_row(label, *(_cell(run[key]) if run[key] is not None else "-" for run in comparison["runs"]))
    for metric in metrics:
        table.add_row(metric, *(_cell(run["final"].get(metric, "-")) for run in comparison["runs"]))
    console.print(table)
    ranks = Table(title="rank correlation with accuracy: Spearman rho / Kendall tau")
    for column in ("metric", "higher better", "vs final kNN", "vs final linear", "within runs: median rho (runs)"):
        ranks.add_column(column, justify="left" if column == "metric" else "right", no_wrap=column == "metric")
    for metric, correlations in comparison["across"].items():
        within = sorted(r[metric]["spearman"] for r in comparison["within"].values()
                        if not math.isnan(r[metric]["spearman"]))
        median = f"{within[len(within) // 2]:+.2f} ({len(within)})" if within else "-"
        ranks.add_row(metric, "yes" if comparison["higher_is_better"][metric] else "no",
                      _correlation_cell(correlations["knn"]), _correlation_cell(correlations["linear"]), median)
    console.print(ranks)
    for warning in comparison["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    console.print(escape(f"wrote {', '.join(written)} to {out}"))


def register(app: typer.Typer) -> None:
    """Add the ``compare`` command to the covssl typer app."""
    app.command("compare")(compare)

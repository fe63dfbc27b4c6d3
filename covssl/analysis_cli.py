"""The analysis commands: ``covssl diagnose`` and ``covssl experiment`` (``covssl compare``: :mod:`covssl.compare_cli`).

    covssl diagnose runs/default --out diag/              # a run folder (or checkpoint-<step>.pt)
    covssl diagnose embeddings.pt --out diag/             # (N, d) tensor, or {"z1": ..., "z2": ...}
    covssl experiment simsiam-collapse --out exp/ [--quick] [--data-root /path/to/cifar10-jpeg.tar.gz]

``diagnose`` writes report.json (:func:`covssl.diagnostics.collapse_report` of each set of
embeddings, plus a verdict) and PNG plots: the log-scale eigen-spectrum with its healthy and
collapsed references and, for a run folder, the metric curves of its epochs.csv. Which
embeddings a run yields, and the verdict's thresholds, are documented in
:mod:`covssl.experiments.embeddings`. Bad inputs exit with code 2 and a one-line message;
an experiment whose claims do not all hold exits with code 1 (its summary is still written).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
errors = Console(stderr=True)  # failures: one "error:" line on stderr, exit code 2
EXPERIMENT_NAMES = "taylor, isotropy, simsiam-collapse, align-only"  # kept in sync by a test
_SHOWN = ("effective_rank", "std_of_normalized", "center_residual_ratio", "condition_number", "eigenvalue_entropy",
          "uniformity", "alignment", "taylor_gap", "rankme", "alpha_req", "nesum", "stable_rank", "w2_uniformity",
          "lidar")
# the metric curves of a run's epochs.csv: (column, panel title, reference lines as (label, value of d))
_CURVES = (
    ("std_of_normalized", "std of z/||z|| (last batch)",
     {"healthy 1/sqrt(d)": lambda d: 1 / math.sqrt(d), "collapse threshold 0.1/sqrt(d)": lambda d: 0.1 / math.sqrt(d)}),
    ("effective_rank", "effective rank of z (last batch)", {}),
    ("rankme", "RankMe of z (last batch)", {}),
    ("alpha_req", "alpha-ReQ of z (last batch)", {"alpha = 1": lambda d: 1.0}),
    ("nesum", "NESum of z (last batch)", {}),
    ("stable_rank", "stable rank of z (last batch)", {}),
    ("w2_uniformity", "W2 uniformity of z (last batch)", {"collapsed sqrt(2)": lambda d: math.sqrt(2)}),
    ("probe_lidar", "LiDAR of z (probe views)", {}),
    ("probe_rankme", "RankMe of z (probe views)", {}),
    ("probe_lidar_backbone", "LiDAR of backbone features (probe)", {}),
    ("probe_rankme_backbone", "RankMe of backbone features (probe)", {}),
    ("loss", "mean training loss", {}),
    ("knn_top1", "kNN top-1", {}),
)


def _fail(error: BaseException) -> None:
    # escaped: "covssl[plot]" is not markup; soft_wrap: one line however long (paths), for logs and scripts
    errors.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
    raise typer.Exit(code=2)


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _read_epochs(path: Path) -> dict[str, list[float]]:
    """Numeric columns of a run's epochs.csv (empty cells become NaN; text columns are dropped)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for key in rows[0] if rows else []:
        try:
            columns[key] = [float(row[key]) if row.get(key) not in (None, "") else math.nan for row in rows]
        except ValueError:
            continue
    return columns


def _with_final_evaluation(epochs: dict[str, list[float]], run_dir: Path) -> dict[str, list[float]]:
    """The last epoch's kNN and probe metrics, which results.json holds (the periodic ones skip it)."""
    from covssl.experiments.compare import read_run

    if not epochs.get("epoch"):
        return epochs
    try:
        run = read_run(run_dir)
    except (ValueError, FileNotFoundError):  # an unfinished run: its curves end where it stopped
        return epochs
    final = {**run.final, **({"knn_top1": run.knn} if run.knn is not None else {})}
    for key, value in final.items():
        column = epochs.setdefault(key, [math.nan] * len(epochs["epoch"]))
        if math.isnan(column[-1]):
            column[-1] = value
    return epochs


def _training_curves(epochs: dict[str, list[float]], dim: int, path: Path) -> Path | None:
    """Every metric epochs.csv logs, one panel each, over the epochs (with reference lines)."""
    from covssl.plots import Panel, Series, plot_panels

    x = epochs.get("epoch")
    if not x:
        return None
    x = [e + 1 for e in x]  # epochs.csv counts from 0; "after epoch 1" reads better
    panels = [
        Panel(title, [Series(key, x, epochs[key], "o-")], xlabel="epoch",
              hlines={label: reference(dim) for label, reference in lines.items()})
        for key, title, lines in _CURVES
        if key in epochs and any(math.isfinite(v) for v in epochs[key])
    ]
    if not panels:
        return None
    return plot_panels(panels, path, title="metrics over training (epochs.csv)", columns=min(4, len(panels)))


def _embedding_sets(target: Path, max_images: int | None) -> tuple[dict[str, Any], dict[str, tuple]]:
    """(info for report.json, name -> (z1, z2 or None)) for a run folder, checkpoint or embeddings file."""
    from covssl.experiments.embeddings import is_run, load_embeddings_file, run_embeddings

    if not target.exists():
        raise FileNotFoundError(f"diagnose: no such file or folder {target}")
    if max_images is not None and max_images < 2:
        raise ValueError(f"--max-images: expected at least 2, got {max_images}")
    if not is_run(target):
        return {"source": str(target), "kind": "embeddings"}, {"embeddings": load_embeddings_file(target)}
    encoded = run_embeddings(target, max_images=max_images)
    info = {"source": str(target), "kind": "run", "run_dir": str(encoded.run_dir), "step": encoded.step}
    return info, {"projector": (encoded.z1, encoded.z2), "backbone": (encoded.features, None)}


def _plots(reports: dict[str, dict[str, Any]], info: dict[str, Any], out: Path) -> list[str]:
    """Spectrum PNG per set; training_curves.png from the run's epochs.csv when there is one."""
    from covssl.plots import plot_spectrum

    written = []
    for name, report in reports.items():
        title = f"{name}: covariance spectrum (B = {report['batch']}, d = {report['dim']})"
        written.append(plot_spectrum({name: report["spectrum"]}, out / f"spectrum_{name}.png", title=title).name)
    epochs_csv = Path(info.get("run_dir", "")) / "epochs.csv"
    if info["kind"] == "run" and epochs_csv.is_file():
        curves = _training_curves(_with_final_evaluation(_read_epochs(epochs_csv), epochs_csv.parent), reports["projector"]["dim"], out / "training_curves.png")
        written += [curves.name] if curves else []
    return written


def _summary_table(reports: dict[str, dict[str, Any]], primary: str, title: str) -> Table:
    """One row per metric, one column per set of embeddings, plus the healthy / collapsed references."""
    table = Table(title=escape(title))
    table.add_column("metric", no_wrap=True)
    for name, report in reports.items():
        table.add_column(f"{name} ({report['batch']} x {report['dim']})", justify="right")
    table.add_column(f"healthy / collapsed ({primary})", justify="right")
    main = reports[primary]
    for key in (k for k in _SHOWN if k in main):
        reference = ""
        if key + "_healthy" in main:
            reference = f"{_cell(main[key + '_healthy'])} / {_cell(main[key + '_collapsed'])}"
        table.add_row(key, *(_cell(r.get(key, "")) for r in reports.values()), reference)
    return table


def diagnose(
    target: Path = typer.Argument(..., help="run folder, checkpoint-<step>.pt, or embeddings file (.pt/.pth/.npy)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for report.json and the PNG plots"),
    eps: float = typer.Option(0.5, "--eps", help="coding-rate distortion used by the taylor_gap entries"),
    max_images: Optional[int] = typer.Option(None, "--max-images", help="run folders: encode at most N test images"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write the PNG plots (needs matplotlib)"),
) -> None:
    """Collapse diagnostics of embeddings or of a trained run: report.json, PNG plots, a verdict."""
    from covssl.diagnostics import collapse_report
    from covssl.diagnostics.quality import RANKME_SAMPLES
    from covssl.diagnostics.verdict import THRESHOLDS, verdict
    from covssl.plots import PlotDependencyError

    try:
        info, sets = _embedding_sets(target, max_images)
        reports = {name: collapse_report(z1, z2, eps=eps) for name, (z1, z2) in sets.items()}
    except (ValueError, FileNotFoundError, RuntimeError) as error:  # RuntimeError: weights that do not fit
        _fail(error)
        return
    primary = next(iter(reports))  # the projector embeddings of a run: what the objective regularizes
    result = {**info, "primary": primary, "verdict": verdict(reports[primary]), "verdict_thresholds": THRESHOLDS,
              "reports": reports}
    out.mkdir(parents=True, exist_ok=True)
    from covssl.diagnostics import json_safe

    (out / "report.json").write_text(json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
    written = ["report.json"]
    if plots:
        try:
            written += _plots(reports, info, out)
        except PlotDependencyError as error:
            _fail(f"{error} (or pass --no-plots); report.json was written to {out}")
    step = f" (step {info['step']})" if "step" in info else ""
    console.print(_summary_table(reports, primary, f"collapse diagnostics: {target}{step}"))
    colour = {"healthy": "green", "partially collapsed": "yellow", "collapsed": "red"}[result["verdict"]]
    console.print(f"verdict ({primary} embeddings): [bold {colour}]{result['verdict']}[/]")
    console.print(escape(", ".join(f"{name}: RankMe on {report['rankme_samples']} samples"
                                   for name, report in reports.items())
                         + f" (the paper's protocol uses {RANKME_SAMPLES}, or all there are)"))
    console.print(escape(f"wrote {', '.join(written)} to {out}"))


def experiment(
    name: str = typer.Argument(..., help=f"one of: {EXPERIMENT_NAMES}"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the figures and summary.md / summary.json"),
    quick: bool = typer.Option(False, "--quick", help="reduced mode (seconds; what the tests run)"),
    seed: int = typer.Option(0, "--seed", help="seed of every random draw"),
    data_root: Optional[str] = typer.Option(
        None, "--data-root", help="train on CIFAR-10 from this folder or .tar.gz copy instead of the offline digits"
    ),
    run: Optional[Path] = typer.Option(None, "--run", help="taylor: use this trained run's embeddings"),
    threads: int = typer.Option(0, "--threads", help="torch threads (0: the cores not already busy)"),
) -> None:
    """Run one of the experiments that check covssl's claims about the objectives; writes figures and a summary."""
    from covssl.experiments import ExperimentOptions, get_experiment, run_experiment
    from covssl.experiments._training import torch_threads
    from covssl.plots import PlotDependencyError

    try:
        get_experiment(name)
        if run is not None and not run.exists():
            raise FileNotFoundError(f"--run: no such run folder or checkpoint {run}")
        if threads < 0:
            raise ValueError(f"--threads: expected 0 (the free cores) or a positive number, got {threads}")
        torch_threads(threads)
        options = ExperimentOptions(out=out, quick=quick, seed=seed, dataset="cifar10" if data_root else "digits",
                                    data_root=data_root, run=run)
        command = f"covssl experiment {name} --out {out}" + (" --quick" if quick else "")
        summary = run_experiment(name, options, command=command)
    except (ValueError, FileNotFoundError, PlotDependencyError) as error:
        _fail(error)
        return
    table = Table(title=summary.title)
    table.add_column("claim")
    table.add_column("result", justify="center")
    for claim in summary.claims:
        table.add_row(escape(claim.text), "[green]PASS[/]" if claim.passed else "[red]FAIL[/]")
    console.print(table)
    console.print(escape(f"wrote {', '.join(summary.figures)}, summary.md, summary.json to {out}"))
    if not summary.passed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add the ``diagnose`` and ``experiment`` commands to the covssl typer app."""
    app.command("diagnose")(diagnose)
    app.command("experiment")(experiment)

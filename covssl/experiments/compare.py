"""Which run is better, without labels: the label-free metrics of finished runs against their accuracy.

``covssl compare RUN_DIR...`` reads each run folder (``config.yaml``, ``results.json``,
``epochs.csv``) and correlates every label-free metric with the final kNN and linear-probe top-1
accuracy, by rank: Spearman's rho and Kendall's tau (``scipy.stats``), which ask only whether
the metric *orders* the runs as the accuracy does. The same is done within each run over its
epochs (the epochs with a kNN evaluation, plus the end of the run).

A run's value of a metric is the one of its final model:

* ``probe_*``: the probe's metrics in ``results.json`` (LiDAR and RankMe over several views of
  fixed training images, on the projector's embeddings and on the backbone's features);
* the per-batch metrics (``rankme``, ``alpha_req``, ``nesum``, ``stable_rank``,
  ``w2_uniformity``, ``effective_rank``): the last value logged in ``epochs.csv``.

[0] Garrido et al. 2023 (RankMe) show the rank tracks accuracy across the hyper-parameters of
    one method; across methods the ordering is not promised. :func:`compare_runs` warns when
    the runs mix methods. https://arxiv.org/abs/2210.02885
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (metric, higher is better): the direction a good metric should correlate with accuracy
METRICS: dict[str, bool] = {
    "probe_rankme": True,
    "probe_lidar": True,
    "probe_rankme_backbone": True,
    "probe_lidar_backbone": True,
    "rankme": True,
    "alpha_req": False,  # [1] of quality.py: best near 1, steeper (larger) is worse in practice
    "nesum": True,
    "stable_rank": True,
    "w2_uniformity": False,  # a distance to uniformity: lower is better
    "effective_rank": True,
}
ACCURACIES = ("knn", "linear")
_MAX_FILE_BYTES = 64 * 2**20  # a run's logs are kilobytes; a larger file is not one of them


@dataclass
class RunRecord:
    """What ``covssl compare`` reads from one run folder."""

    name: str
    run_dir: Path
    method: str
    objective: str | None
    knn: float | None
    linear: float | None
    final: dict[str, float] = field(default_factory=dict)  # metric -> value of the final model
    epochs: list[dict[str, float]] = field(default_factory=list)  # epochs.csv rows (numbers only)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: no {path.name} (not a finished covssl run folder)")
    if path.stat().st_size > _MAX_FILE_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, too large for a run's {path.name}")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: unreadable ({type(error).__name__}: {error})") from None


def _number(value: Any) -> float | None:
    """A float from a JSON or CSV cell ("inf" and "nan" included); None for empty or non-numeric cells."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _read_epochs(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    rows = []
    for row in csv.DictReader(_read_text(path).splitlines()):
        numbers = {key: _number(value) for key, value in row.items() if key is not None}
        rows.append({key: value for key, value in numbers.items() if value is not None})
    return rows


def _method(config_text: str, path: Path) -> tuple[str, str | None]:
    from omegaconf import OmegaConf

    try:
        config = OmegaConf.create(config_text)
        method = OmegaConf.select(config, "method.name", default=None)
        objective = OmegaConf.select(config, "method.objective", default=None)
    except Exception as error:  # YAML syntax errors, a list instead of a mapping
        raise ValueError(f"{path}: not a run configuration ({type(error).__name__})") from None
    if not isinstance(method, str):
        raise ValueError(f"{path}: no method.name")
    return method, objective if isinstance(objective, str) else None


def read_run(run_dir: str | Path) -> RunRecord:
    """The method, final accuracies, final label-free metrics and epoch log of a finished run.

    Args:
        run_dir: a folder written by ``covssl train`` that holds ``results.json``.

    Returns:
        A :class:`RunRecord`; ``knn``/``linear`` are None when the run did not evaluate them.

    Raises:
        FileNotFoundError: the folder, its ``config.yaml`` or its ``results.json`` is missing.
        ValueError: a file is malformed (the message names it).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"compare: no such run folder {run_dir}")
    method, objective = _method(_read_text(run_dir / "config.yaml"), run_dir / "config.yaml")
    results_path = run_dir / "results.json"
    try:
        results = json.loads(_read_text(results_path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{results_path}: not valid JSON ({error})") from None
    if not isinstance(results, dict):
        raise ValueError(f"{results_path}: expected a JSON object, got {type(results).__name__}")
    knn = results.get("knn_top1")
    epochs = _read_epochs(run_dir / "epochs.csv")
    final: dict[str, float] = {}
    for row in epochs:  # the last logged value of each metric
        final.update({key: row[key] for key in METRICS if key in row})
    label_free = results.get("label_free")
    if isinstance(label_free, dict):
        final.update({key: v for key, value in label_free.items() if (v := _number(value)) is not None})
    return RunRecord(
        name=run_dir.name, run_dir=run_dir, method=method, objective=objective,
        knn=_number(knn.get("trained")) if isinstance(knn, dict) else _number(knn),
        linear=_number(results.get("linear_probe_top1")), final=final, epochs=epochs,
    )


def rank_correlation(x: list[float], y: list[float]) -> dict[str, float]:
    """Spearman's rho and Kendall's tau (tau-b) of paired values, over the pairs with no NaN.

    Infinite values rank as the largest or smallest. With fewer than 3 pairs, or when either
    side is constant, the correlations are undefined: NaN.

    Args:
        x, y: paired values.

    Returns:
        {"spearman": rho, "kendall": tau, "n": number of pairs used}.

    Examples:
        >>> corr = rank_correlation([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0])
        >>> round(corr["spearman"], 6), round(corr["kendall"], 6), corr["n"]
        (0.8, 0.666667, 4)
    """
    from scipy import stats

    pairs = [(a, b) for a, b in zip(x, y) if not (math.isnan(a) or math.isnan(b))]
    n = len(pairs)
    if n < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return {"spearman": math.nan, "kendall": math.nan, "n": n}
    a, b = zip(*pairs)
    return {"spearman": float(stats.spearmanr(a, b).statistic), "kendall": float(stats.kendalltau(a, b).statistic),
            "n": n}


def _within(run: RunRecord, metric: str) -> dict[str, float]:
    """The metric against kNN over a run's epochs: those with a kNN evaluation, then the final model."""
    points = [(row[metric], row["knn_top1"]) for row in run.epochs if metric in row and "knn_top1" in row]
    if metric in run.final and run.knn is not None:
        points.append((run.final[metric], run.knn))
    return rank_correlation([p for p, _ in points], [k for _, k in points])


def compare_runs(runs: list[RunRecord]) -> dict[str, Any]:
    """Rank correlations of every metric with final kNN and linear-probe accuracy, across and within runs.

    Args:
        runs: at least two finished runs.

    Returns:
        JSON-ready dict: "runs" (name, method, accuracies, final metrics), "across"
        (metric -> accuracy -> correlation), "within" (run -> metric -> correlation with kNN over
        epochs), "warnings" (e.g. mixed methods, missing accuracies).
    """
    if len(runs) < 2:
        raise ValueError(f"compare: expected at least 2 run folders, got {len(runs)}")
    warnings = []
    methods = sorted({run.method for run in runs})
    if len(methods) > 1:
        warnings.append(
            f"these runs mix methods ({', '.join(methods)}): RankMe and LiDAR were shown to rank runs "
            "within one method; across methods their ordering is not promised"
        )
    if len(runs) < 3:
        warnings.append("rank correlations need at least 3 runs: the table shows the values only")
    across: dict[str, dict[str, dict[str, float]]] = {}
    for metric in METRICS:
        if not any(metric in run.final for run in runs):
            continue
        values = [run.final.get(metric, math.nan) for run in runs]
        across[metric] = {}
        for accuracy in ACCURACIES:
            scores = [getattr(run, accuracy) for run in runs]
            across[metric][accuracy] = rank_correlation(values, [math.nan if s is None else s for s in scores])
    within = {run.name: {metric: _within(run, metric) for metric in across} for run in runs}
    return {
        "runs": [{"name": run.name, "run_dir": str(run.run_dir), "method": run.method, "objective": run.objective,
                  "knn": run.knn, "linear": run.linear, "final": run.final} for run in runs],
        "across": across,
        "within": within,
        "higher_is_better": {metric: METRICS[metric] for metric in across},
        "warnings": warnings,
    }


def comparison_panels(runs: list[RunRecord], comparison: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """Scatter panels of each metric against final kNN and linear accuracy (one colour per run), and
    line panels of each metric against kNN over each run's epochs."""
    from covssl.plots import Panel, Series

    across_panels = []
    for accuracy in ACCURACIES:
        for metric, correlations in comparison["across"].items():
            corr = correlations[accuracy]
            series = [Series(run.name, [run.final.get(metric, math.nan)], [score], "o")
                      for run in runs if (score := getattr(run, accuracy)) is not None]
            title = f"{metric} vs {accuracy}: rho {corr['spearman']:.2f}, tau {corr['kendall']:.2f}"
            across_panels.append(Panel(title, series, xlabel=metric, ylabel=f"final {accuracy} top-1"))
    within_panels = []
    for metric in comparison["across"]:
        series = []
        for run in runs:
            points = [(row[metric], row["knn_top1"]) for row in run.epochs if metric in row and "knn_top1" in row]
            if metric in run.final and run.knn is not None:
                points.append((run.final[metric], run.knn))
            series.append(Series(run.name, [p for p, _ in points], [k for _, k in points], "o-"))
        within_panels.append(Panel(f"{metric} vs kNN over epochs", series, xlabel=metric, ylabel="kNN top-1"))
    return across_panels, within_panels

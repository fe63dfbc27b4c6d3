"""PNG figures for ``covssl diagnose`` and ``covssl experiment``: spectra and metric curves.

matplotlib is an optional dependency (``pip install 'covssl[plot]'``): it is imported inside the
functions, with the Agg backend (no display needed), and a missing install raises
:class:`PlotDependencyError` saying how to get it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

INSTALL_HINT = "pip install 'covssl[plot]'"


class PlotDependencyError(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend, or PlotDependencyError."""
    try:
        import matplotlib
    except ImportError:
        raise PlotDependencyError(f"the plots need matplotlib, which is not installed: {INSTALL_HINT}") from None
    matplotlib.use("Agg", force=True)  # files only: works on machines without a display
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Series:
    """One line of a panel: y against x, with a matplotlib format string ("-", "o-", "--")."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    style: str = "-"


@dataclass
class Panel:
    """One subplot: its series, axis labels and scales, and horizontal reference lines."""

    title: str
    series: list[Series]
    xlabel: str = "step"
    ylabel: str = ""
    logx: bool = False
    logy: bool = False
    symlogy: bool = False  # log scale that also shows negative values (linear on |y| < linthresh)
    linthresh: float = 1e-2
    hlines: dict[str, float] = field(default_factory=dict)  # label -> y of a dotted reference line


def _finite(x: Sequence[float], y: Sequence[float], log_x: bool, log_y: bool) -> tuple[list[float], list[float]]:
    """Drop points a log axis cannot show (<= 0) and non-finite ones (inf ratios of collapsed runs)."""
    kept = [
        (float(a), float(b))
        for a, b in zip(x, y)
        if math.isfinite(float(a)) and math.isfinite(float(b)) and (not log_x or a > 0) and (not log_y or b > 0)
    ]
    return [a for a, _ in kept], [b for _, b in kept]


def plot_panels(
    panels: Sequence[Panel], path: str | Path, title: str = "", columns: int = 3, shared_legend: bool = False
) -> Path:
    """Draw panels side by side (``columns`` per row) and save them as a PNG.

    Args:
        panels: the subplots, in reading order.
        path: the PNG file to write (its folder must exist).
        title: the figure's title.
        columns: panels per row.
        shared_legend: the panels plot the same runs: one legend of the first panel's series
            below the figure (each panel keeps a legend of its reference lines only).

    Returns:
        The path written.

    Examples:
        >>> panel = Panel("loss", [Series("run", [0, 1, 2], [3.0, 2.0, 1.5])])
        >>> plot_panels([panel], "/tmp/loss.png")  # doctest: +SKIP
        PosixPath('/tmp/loss.png')
    """
    plt = pyplot()
    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 3.8 * rows), squeeze=False)
    shared: list[Any] = []
    for ax, panel in zip(axes.flat, panels):
        lines = []
        for series in panel.series:
            x, y = _finite(series.x, series.y, panel.logx, panel.logy)
            lines += ax.plot(x, y, series.style, label=series.label, markersize=3)
        shared = shared or lines
        references = [
            ax.axhline(value, color=f"C{7 + index % 3}", linestyle=":", linewidth=1.5, label=label)
            for index, (label, value) in enumerate(panel.hlines.items())
        ]
        if panel.logx:
            ax.set_xscale("log")
        if panel.logy:
            ax.set_yscale("log")
        elif panel.symlogy:
            ax.set_yscale("symlog", linthresh=panel.linthresh)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, which="major", alpha=0.3)
        if shared_legend and references:
            ax.legend(handles=references, fontsize=7)
        elif not shared_legend and (panel.series or panel.hlines):
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    bottom = 0.0
    if shared_legend and shared:
        ncol = min(len(shared), 3)
        fig.legend(handles=shared, loc="lower center", ncol=ncol, fontsize=8)
        bottom = min(0.4, 0.045 * math.ceil(len(shared) / ncol) / rows)  # room for the legend rows
    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_spectrum(spectra: dict[str, Sequence[float]], path: str | Path, title: str = "eigen-spectrum") -> Path:
    """Log-scale covariance eigenvalues (descending) with the healthy and collapsed references.

    For a spectrum lambda_1 >= ... >= lambda_d with trace t = sum_i lambda_i the references are
      healthy (isotropic, same trace):  lambda_i = t / d for every i  (a flat line);
      collapsed (rank 1, same trace):   lambda_1 = t, lambda_i = 0 for i > 1 (one point; zeros
                                        cannot be drawn on a log axis, so the drop is an arrow).
    Exact zeros of the measured spectrum are not drawn either; the title says how many there are.
    The references are drawn for the first spectrum.

    Args:
        spectra: label -> eigenvalues (descending, >= 0), e.g. collapse_report(z)["spectrum"].
        path: the PNG file to write.
        title: the figure's title.

    Returns:
        The path written.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    zeros: list[str] = []
    for index, (label, values) in enumerate(spectra.items()):
        values = [float(v) for v in values]
        ranks = list(range(1, len(values) + 1))
        x, y = _finite(ranks, values, False, True)
        ax.plot(x, y, "o-", markersize=3, label=label)
        if len(y) < len(values):
            zeros.append(f"{label}: {len(values) - len(y)} zero")
        trace, dim = sum(values), len(values)
        if index == 0 and trace > 0:
            healthy = f"healthy: isotropic, trace/d = {trace / dim:.3g}"
            ax.axhline(trace / dim, color="C2", linestyle="--", label=healthy)
            ax.plot([1], [trace], "kx", markersize=9, label=f"collapsed: rank 1, lambda_1 = trace = {trace:.3g}")
            ax.annotate("", xy=(1.0, trace * 1e-3), xytext=(1.0, trace), arrowprops={"arrowstyle": "->", "color": "k"})
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue index i (descending)")
    ax.set_ylabel("lambda_i of the covariance")
    ax.set_title(title + (f"  ({'; '.join(zeros)} eigenvalues not shown)" if zeros else ""), fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)

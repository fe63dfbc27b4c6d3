"""The registry of experiments and what every experiment hands back: numbers, claims, figures.

An experiment is a function ``run(options) -> ExperimentSummary`` registered by name; the
registry is filled by the explicit imports in :mod:`covssl.experiments`. Each run writes its
figures into ``options.out`` and :func:`run_experiment` adds ``summary.md`` (for people) and
``summary.json`` (for tests and scripts) with the measured numbers.

A *claim* is a statement about the objectives that the experiment checks on its numbers (e.g. "the run
without stop-gradient collapses"); ``passed`` is what was measured, not what was hoped for.
"""

from __future__ import annotations

from covssl.registry import Registry

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from covssl.diagnostics import json_safe


@dataclass
class ExperimentOptions:
    """What the command line passes to an experiment.

    Attributes:
        out: folder for the figures and summaries (created if missing).
        quick: the reduced mode the tests run (seconds instead of minutes).
        seed: seed of every random draw.
        dataset: "digits" (offline default) or "cifar10" for the training-based experiments.
        data_root: folder or .tar.gz copy of the dataset when it is not "digits".
        run: a trained run folder (or checkpoint) to analyse, where the experiment accepts one.
    """

    out: Path
    quick: bool = False
    seed: int = 0
    dataset: str = "digits"
    data_root: str | None = None
    run: Path | None = None


@dataclass
class Claim:
    """A checked statement and whether the measured numbers satisfy it."""

    text: str
    passed: bool


@dataclass
class ExperimentSummary:
    """Numbers (JSON-safe), claims, markdown tables, notes and the figures written."""

    name: str
    title: str
    numbers: dict[str, Any]
    claims: list[Claim] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every claim holds."""
        return all(claim.passed for claim in self.claims)

    def to_markdown(self, command: str = "") -> str:
        """The summary as markdown: claims with PASS/FAIL, tables, notes, figures."""
        lines = [f"# {self.title}", ""]
        if command:
            lines += [f"`{command}`", ""]
        lines += ["## Claims", ""]
        lines += [f"- **{'PASS' if c.passed else 'FAIL'}** {c.text}" for c in self.claims]
        for table in self.tables:
            lines += ["", table]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        if self.figures:
            lines += ["", "## Figures", ""] + [f"![{name}]({name})" for name in self.figures]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        """summary.json: name, passed, claims, numbers (non-finite floats as strings)."""
        return json_safe(
            {
                "name": self.name,
                "passed": self.passed,
                "claims": [{"text": c.text, "passed": c.passed} for c in self.claims],
                "numbers": self.numbers,
                "figures": self.figures,
            }
        )


def markdown_table(header: list[str], rows: list[list[Any]], digits: int = 4) -> str:
    """A markdown table; floats printed with ``digits`` significant digits.

    Examples:
        >>> print(markdown_table(["run", "std"], [["a", 0.123456]], digits=2))
        | run | std |
        |---|---|
        | a | 0.12 |
    """

    def cell(value: Any) -> str:
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its name, the function that runs it and a one-line claim."""

    name: str
    run: Callable[[ExperimentOptions], ExperimentSummary]
    description: str


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def register_experiment(experiment: Experiment) -> Experiment:
    """Add an experiment; a name can be registered only once."""
    return EXPERIMENTS.register(experiment.name, experiment)


def list_experiments() -> list[str]:
    """Registered experiment names, sorted."""
    return EXPERIMENTS.names()


def get_experiment(name: str) -> Experiment:
    """Look an experiment up by name, listing the choices when it is unknown."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment: unknown name {name!r}; choose one of: {', '.join(list_experiments())}")
    return EXPERIMENTS[name]


def run_experiment(name: str, options: ExperimentOptions, command: str = "") -> ExperimentSummary:
    """Run an experiment into ``options.out`` and write summary.md and summary.json there.

    Args:
        name: a name of :func:`list_experiments`.
        options: output folder, quick mode, seed, data.
        command: the command line, quoted at the top of summary.md.

    Returns:
        The summary (also written to disk).
    """
    experiment = get_experiment(name)
    if options.dataset not in ("digits", "cifar10"):
        raise ValueError(f"dataset: expected 'digits' or 'cifar10', got {options.dataset!r}")
    options.out = Path(options.out)
    options.out.mkdir(parents=True, exist_ok=True)
    summary = experiment.run(options)
    (options.out / "summary.md").write_text(summary.to_markdown(command))
    (options.out / "summary.json").write_text(json.dumps(summary.to_json(), indent=2, allow_nan=False) + "\n")
    return summary

"""The experiment registry and the summary files every experiment writes."""

from __future__ import annotations

import json

import pytest

from covssl.analysis_cli import EXPERIMENT_NAMES
from covssl.experiments import EXPERIMENTS, Claim, Experiment, ExperimentOptions, ExperimentSummary, get_experiment
from covssl.experiments import list_experiments, register_experiment, run_experiment
from covssl.experiments.registry import markdown_table


def test_the_four_experiments_are_registered_and_listed_in_the_cli_help() -> None:
    assert list_experiments() == sorted(["taylor", "isotropy", "simsiam-collapse", "align-only"])
    assert sorted(EXPERIMENT_NAMES.split(", ")) == list_experiments()


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown name 'nope'.*align-only, isotropy, simsiam-collapse, taylor"):
        get_experiment("nope")


def test_registering_a_name_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_experiment(Experiment("taylor", EXPERIMENTS["taylor"].run, "again"))


def test_summary_files(tmp_path, monkeypatch) -> None:
    def fake(options: ExperimentOptions) -> ExperimentSummary:
        return ExperimentSummary("fake", "A fake", {"x": float("inf"), "y": 1.5},
                                 [Claim("holds", True), Claim("fails", False)], tables=["## T\n\n| a |\n|---|\n| 1 |"],
                                 notes=["a note"], figures=["f.png"])

    monkeypatch.setitem(EXPERIMENTS, "fake", Experiment("fake", fake, "test only"))
    summary = run_experiment("fake", ExperimentOptions(out=tmp_path / "new" / "dir"), command="covssl experiment fake")
    assert not summary.passed
    data = json.loads((tmp_path / "new" / "dir" / "summary.json").read_text())
    assert data["numbers"] == {"x": "inf", "y": 1.5} and data["passed"] is False
    assert [c["passed"] for c in data["claims"]] == [True, False]
    markdown = (tmp_path / "new" / "dir" / "summary.md").read_text()
    assert "- **PASS** holds" in markdown and "- **FAIL** fails" in markdown
    assert "`covssl experiment fake`" in markdown and "![f.png](f.png)" in markdown and "- a note" in markdown


def test_bad_dataset_is_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match="dataset: expected 'digits' or 'cifar10', got 'mnist'"):
        run_experiment("isotropy", ExperimentOptions(out=tmp_path, dataset="mnist"))


def test_markdown_table() -> None:
    table = markdown_table(["a", "b"], [["x", 0.123456], ["y", 2]], digits=3)
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x | 0.123 |", "| y | 2 |"]

"""``covssl config`` and ``covssl terms``."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from covssl.cli import app
from covssl.config import RunConfig, TrainConfig, from_yaml, shipped_configs
from covssl.config_cli import commented_yaml, field_comments
from covssl.objectives.terms import TERMS
from covssl.resolve import load_config

runner = CliRunner(env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})


def test_field_comments_join_continuation_lines() -> None:
    comments = field_comments(TrainConfig)
    assert comments["precision"].startswith("auto: bf16 autocast on CUDA, fp32 on CPU; fastest: times")
    assert comments["precision"].endswith("(covssl/train/precision.py)")


def test_choices_are_declared_checked_and_shown() -> None:
    import dataclasses

    from covssl.config import OptimConfig

    declared = {f.name: f.metadata.get("choices") for f in dataclasses.fields(OptimConfig)}
    assert declared["optimizer"] == ("sgd", "lars", "adamw")
    result = runner.invoke(app, ["config"])
    assert re.search(r"^  optimizer: lars  # sgd \| lars \| adamw: ", result.output, re.M)
    bad = runner.invoke(app, ["config", "train.on_nonfinite=ignore"])
    assert bad.exit_code == 2 and "train.on_nonfinite: expected one of ('stop', 'skip')" in bad.output


def test_the_printed_config_is_the_resolved_one_with_a_comment_per_key() -> None:
    result = runner.invoke(app, ["config", "-c", "cifar10/vicreg", "optim.lr=0.123", "train.epochs=7"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert re.search(r"^  lr: 0\.123  # base learning rate", text, re.M)
    assert re.search(r"^  epochs: 7", text, re.M)
    assert re.search(r"^  name: vicreg  # ", text, re.M)
    # without the comments it is the resolved configuration itself
    assert from_yaml(text) == load_config("cifar10/vicreg", ["optim.lr=0.123", "train.epochs=7"])


def test_every_key_of_every_section_has_its_comment() -> None:
    text = commented_yaml(RunConfig())
    scalar_keys = [line for line in text.splitlines() if re.match(r"^  \w+: \S", line)]
    assert scalar_keys and all("  # " in line for line in scalar_keys), [l for l in scalar_keys if "  # " not in l]


def test_config_list_names_every_shipped_config() -> None:
    result = runner.invoke(app, ["config", "--list"])
    assert result.exit_code == 0
    for name in shipped_configs():
        assert name in result.output


def test_a_bad_override_is_one_line_with_the_key_and_exit_code_2() -> None:
    result = runner.invoke(app, ["config", "optim.nope=1"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "optim.nope" in result.output and "reference_type" not in result.output


def test_terms_lists_every_registered_term_with_its_formula() -> None:
    result = runner.invoke(app, ["terms"])
    assert result.exit_code == 0
    for name, term in TERMS.items():
        assert name in result.output
    filtered = runner.invoke(app, ["terms", "cov*"]).output
    assert "covariance_penalty" in filtered and "barlow_twins" not in filtered


def test_train_help_names_config_and_terms() -> None:
    result = runner.invoke(app, ["train", "--help"])
    assert "covssl config" in result.output and "covssl terms" in result.output

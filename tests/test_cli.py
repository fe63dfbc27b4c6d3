"""The command line: train -> eval -> export -> load, methods, and clear errors."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from covssl.cli import app
from covssl.export import load_backbone
from covssl.train.restore import load_run
from tests.tiny_run import TINY as TINY_RUN

runner = CliRunner()

TINY = [*TINY_RUN, "train.epochs=1"]


def test_train_eval_export_round_trip(tmp_path) -> None:
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", *TINY, f"train.out_dir={run}"])
    assert result.exit_code == 0, result.output
    assert "random init" in result.output and "raw pixels" in result.output

    result = runner.invoke(app, ["eval", str(run)])
    assert result.exit_code == 0, result.output
    assert "kNN top-1" in result.output
    result = runner.invoke(app, ["eval", str(run), "--image-size", "24"])
    assert result.exit_code == 0, result.output
    assert "kNN top-1" in result.output

    out = tmp_path / "exported"
    result = runner.invoke(app, ["export", str(run), str(out)])
    assert result.exit_code == 0, result.output
    backbone = load_backbone(out)
    _, model, _ = load_run(run)
    images = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(backbone(images), model.backbone.eval()(images))


def test_methods_lists_every_method() -> None:
    from covssl.methods import list_methods

    result = runner.invoke(app, ["methods"], terminal_width=200)
    assert result.exit_code == 0
    for name in list_methods():
        assert name in result.output


def test_bad_override_is_a_clear_error_not_a_traceback(tmp_path) -> None:
    result = runner.invoke(app, ["train", "optim.lr=-3", f"train.out_dir={tmp_path}"])
    assert result.exit_code == 2
    assert "optim.lr" in result.output
    assert "Traceback" not in result.output


def test_eval_of_a_missing_run_is_a_clear_error(tmp_path) -> None:
    result = runner.invoke(app, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such run folder" in result.output

"""``covssl diagnose`` and ``covssl experiment``: files written, numbers, verdicts, clear errors."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from covssl.cli import app
from covssl.resolve import load_config
from covssl.experiments import EXPERIMENTS, Claim, Experiment, ExperimentSummary
from covssl.plots import Panel, PlotDependencyError, Series, plot_panels, plot_spectrum
from covssl.train import train
from tests.tiny_run import STEPS_PER_EPOCH, TINY

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def flat(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as image:
        assert image.size[0] > 200 and image.size[1] > 200


def reference_std_of_normalized(z: np.ndarray) -> float:
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    return float(np.std(zn, axis=0, ddof=1).mean())


def reference_effective_rank(z: np.ndarray) -> float:
    s = np.linalg.svd(z - z.mean(axis=0), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(math.exp(-(p * np.log(p)).sum()))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 2-epoch VICReg run of the shared tiny setting: seconds on one core."""
    out = tmp_path_factory.mktemp("diag") / "run"
    config = load_config(None, [*TINY, "train.epochs=2", f"train.out_dir={out}"])
    train(config)
    return out


def test_diagnose_a_run_folder(tiny_run, tmp_path) -> None:
    result = runner.invoke(app, ["diagnose", str(tiny_run), "--out", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "verdict (projector embeddings):" in flat(result.output)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kind"] == "run" and report["step"] == 2 * STEPS_PER_EPOCH and report["primary"] == "projector"
    assert report["verdict"] in ("healthy", "partially collapsed", "collapsed")
    projector, backbone = report["reports"]["projector"], report["reports"]["backbone"]
    assert (projector["batch"], projector["dim"]) == (64, 32) and "alignment" in projector
    assert (backbone["batch"], backbone["dim"]) == (64, 32) and "alignment" not in backbone  # round(128 * 0.25)
    for name in ("spectrum_projector.png", "spectrum_backbone.png", "training_curves.png"):
        assert_png(tmp_path / name)


def test_diagnose_a_checkpoint_file_without_plots(tiny_run, tmp_path) -> None:
    checkpoint = sorted(tiny_run.glob("checkpoint-*.pt"))[0]
    args = ["diagnose", str(checkpoint), "--out", str(tmp_path), "--no-plots", "--max-images", "20"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["step"] == STEPS_PER_EPOCH and report["reports"]["projector"]["batch"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_diagnose_an_embeddings_file_matches_numpy(tmp_path) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(64, 8)) * np.linspace(0.5, 2.0, 8)
    np.save(tmp_path / "z.npy", z)
    result = runner.invoke(app, ["diagnose", str(tmp_path / "z.npy"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    entry = report["reports"]["embeddings"]
    assert entry["std_of_normalized"] == pytest.approx(reference_std_of_normalized(z), rel=1e-9)
    assert entry["effective_rank"] == pytest.approx(reference_effective_rank(z), rel=1e-9)
    expected_spectrum = sorted(np.linalg.eigvalsh(np.cov(z, rowvar=False)), reverse=True)
    assert entry["spectrum"] == pytest.approx(expected_spectrum, rel=1e-9)
    assert report["verdict"] == "healthy" and "healthy" in result.output
    assert_png(tmp_path / "out" / "spectrum_embeddings.png")


def test_diagnose_collapsed_pair(tmp_path) -> None:
    center = torch.randn(1, 32)
    z1 = center + 1e-4 * torch.randn(50, 32)  # every row points (almost) the same way
    torch.save({"z1": z1, "z2": z1 + 1e-5}, tmp_path / "pair.pt")
    args = ["diagnose", str(tmp_path / "pair.pt"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verdict"] == "collapsed" and "alignment" in report["reports"]["embeddings"]
    assert "collapsed" in result.output


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.pt", "no such file or folder"),
        (lambda p: (torch.save(torch.randn(7), p / "v.pt"), p / "v.pt")[1], "expected a 2-D tensor"),
        (lambda p: ((p / "e.txt").write_text("1 2"), p / "e.txt")[1], "expected a .pt, .pth, .npy file"),
        (lambda p: (np.save(p / "n.npy", np.full((4, 2), np.nan)), p / "n.npy")[1], "finite"),
        (lambda p: ((p / "empty").mkdir(), p / "empty")[1], "no config.yaml"),
    ],
)
def test_diagnose_bad_inputs_exit_2(tmp_path, make, message) -> None:
    target = make(tmp_path)
    result = runner.invoke(app, ["diagnose", str(target), "--out", str(tmp_path / "out")], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert message in flat(result.output) and "Traceback" not in result.output
    assert not (tmp_path / "out" / "report.json").exists()


def test_diagnose_without_matplotlib_says_how_to_install(tmp_path, monkeypatch) -> None:
    np.save(tmp_path / "z.npy", np.random.default_rng(0).normal(size=(10, 3)))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    args = ["diagnose", str(tmp_path / "z.npy"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2
    assert "pip install 'covssl[plot]'" in flat(result.output) and "--no-plots" in flat(result.output)
    assert (tmp_path / "out" / "report.json").is_file()  # the numbers do not need matplotlib
    with pytest.raises(PlotDependencyError, match=r"covssl\[plot\]"):
        plot_spectrum({"z": [1.0]}, tmp_path / "x.png")


def test_plots_skip_what_a_log_axis_cannot_show(tmp_path) -> None:
    plot_spectrum({"collapsed": [4.0, 0.0, 0.0]}, tmp_path / "s.png")
    panel = Panel("ratio", [Series("run", [0, 1, 2], [1.0, float("inf"), -1.0])], logy=True, hlines={"one": 1.0})
    plot_panels([panel, panel], tmp_path / "p.png", shared_legend=True)
    assert_png(tmp_path / "s.png")
    assert_png(tmp_path / "p.png")


def test_experiment_command_quick(tmp_path) -> None:
    result = runner.invoke(app, ["experiment", "isotropy", "--out", str(tmp_path), "--quick", "--threads", "1"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "FAIL" not in result.output
    assert (tmp_path / "summary.md").is_file() and json.loads((tmp_path / "summary.json").read_text())["passed"]
    assert_png(tmp_path / "isotropy_curves.png")


def test_experiment_with_a_failing_claim_exits_1(tmp_path, monkeypatch) -> None:
    def failing(options):
        return ExperimentSummary("fails", "Fails", {}, [Claim("does not hold", False)])

    monkeypatch.setitem(EXPERIMENTS, "fails", Experiment("fails", failing, "test only"))
    result = runner.invoke(app, ["experiment", "fails", "--out", str(tmp_path), "--threads", "1"], terminal_width=200)
    assert result.exit_code == 1 and "FAIL" in result.output
    assert (tmp_path / "summary.md").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["experiment", "nope"], "choose one of: align-only, isotropy, simsiam-collapse, taylor"),
        (["experiment", "taylor", "--run", "/no/such/run"], "--run: no such run folder"),
        (["experiment", "taylor", "--threads", "-1"], "--threads: expected 0"),
    ],
)
def test_experiment_bad_inputs_exit_2(tmp_path, args, message) -> None:
    result = runner.invoke(app, [*args, "--out", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert message in flat(result.output) and "Traceback" not in result.output


def test_training_curves_cover_every_logged_metric_and_the_final_evaluation(tmp_path) -> None:
    from covssl.analysis_cli import _CURVES, _with_final_evaluation
    from covssl.experiments.compare import METRICS

    assert set(METRICS) <= {key for key, _, _ in _CURVES}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("method:\n  name: vicreg\n")
    (run_dir / "results.json").write_text('{"knn_top1": {"trained": 0.5}, "label_free": {"probe_lidar": 9.0}}')
    epochs = {"epoch": [0.0, 1.0], "knn_top1": [0.3, math.nan], "rankme": [1.0, 2.0]}
    curves = _with_final_evaluation(epochs, run_dir)
    assert curves["knn_top1"] == [0.3, 0.5] and curves["rankme"][-1] == 2.0
    assert math.isnan(curves["probe_lidar"][0]) and curves["probe_lidar"][1] == 9.0

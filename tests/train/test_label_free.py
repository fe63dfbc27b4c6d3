"""The label-free quality metrics a run logs: every epoch in epochs.csv, the probe's in results.json."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from covssl.diagnostics import lidar, rankme
from covssl.methods.model import build_model
from covssl.train import train
from covssl.train.checkpoint import load_latest
from covssl.train.data import load_splits
from covssl.train.evaluation import QualityProbe

CHEAP = ("rankme", "nesum", "stable_rank", "w2_uniformity")
PROBE = ("probe_lidar", "probe_rankme", "probe_lidar_backbone", "probe_rankme_backbone")


def _epochs(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "epochs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_epochs_log_the_cheap_metrics_and_the_probe_at_knn_epochs(make_config) -> None:
    config = make_config("vicreg", "train.epochs=3", "train.knn_every=1")
    result = train(config)
    rows = _epochs(result.run_dir)
    assert len(rows) == 3
    for row in rows:
        assert all(math.isfinite(float(row[key])) for key in CHEAP)
        assert float(row["nesum"]) == pytest.approx(float(row["stable_rank"]), rel=1e-9)
        assert "alpha_req" not in row  # d = 32 < 100 eigenvalues: not logged
    # the probe runs with the periodic kNN (epochs 1, 2), and the final one goes to results.json
    assert [bool(row["probe_lidar"]) for row in rows] == [True, True, False]
    summary = json.loads((result.run_dir / "results.json").read_text())
    assert set(summary["label_free"]) == set(PROBE) and summary["label_free"] == result.label_free


def test_the_final_probe_metrics_are_the_diagnostics_of_the_final_model(make_config) -> None:
    config = make_config("vicreg", "train.epochs=1", "eval.probe_images=40", "eval.probe_views=3")
    result = train(config)
    model = build_model(config)
    checkpoint, _ = load_latest(result.run_dir)
    model.load_state_dict(checkpoint["model"])
    probe = QualityProbe(load_splits(config.data, config.train.seed), config, torch.device("cpu"))
    assert probe.images.shape[0] == 40
    h, z = probe.metrics_inputs(model.backbone, model.projector)
    assert h.shape[:2] == z.shape[:2] == (3, 40)
    assert result.label_free == {
        "probe_lidar": lidar(z), "probe_rankme": rankme(z.reshape(-1, z.shape[-1])),
        "probe_lidar_backbone": lidar(h), "probe_rankme_backbone": rankme(h.reshape(-1, h.shape[-1])),
    }


def test_no_probe_when_disabled(make_config) -> None:
    result = train(make_config("vicreg", "train.max_steps=2", "eval.probe_images=0"))
    assert result.label_free == {}


@pytest.mark.parametrize("bad", ["eval.probe_images=-1", "eval.probe_views=1", "eval.probe_views=2.5"])
def test_bad_probe_settings_are_refused(make_config, bad: str) -> None:
    from covssl.config import validate

    with pytest.raises(ValueError, match=bad.split("=")[0].replace(".", r"\.")):
        validate(make_config("vicreg", bad))


def test_the_metrics_and_the_probe_change_nothing_the_run_computes(tmp_path, make_config) -> None:
    with_probe = train(make_config("vicreg", "train.knn_every=1", f"train.out_dir={tmp_path / 'a'}"))
    without = train(make_config("vicreg", "train.knn_every=1", "eval.probe_images=0", f"train.out_dir={tmp_path / 'b'}"))
    steps = [(run.run_dir / "steps.csv").read_text() for run in (with_probe, without)]
    assert steps[0] == steps[1]
    weights = [load_latest(run.run_dir)[0]["model"] for run in (with_probe, without)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert with_probe.knn["trained"] == without.knn["trained"]

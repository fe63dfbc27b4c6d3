"""benchmarks/quality_cifar10.py and benchmarks/gpu_cifar10.py: protocols checked, --quick run once each."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from covssl.resolve import load_config
from covssl.methods import list_methods


@pytest.fixture(scope="module")
def quality(load_benchmark) -> ModuleType:
    return load_benchmark("quality_cifar10")


@pytest.fixture(scope="module")
def gpu(load_benchmark) -> ModuleType:
    return load_benchmark("gpu_cifar10")


def test_protocol_defaults_are_the_shipped_cpu_fast_config(quality: ModuleType) -> None:
    shipped = load_config("cifar10/cpu_fast")
    p = quality.PROTOCOL
    fields = {
        "backbone": shipped.model.backbone, "width": shipped.model.width, "image_size": shipped.augment.image_size,
        "projector_hidden": shipped.model.projector_hidden, "batch_size": shipped.train.batch_size,
        "eval_image_size": shipped.eval.image_size, "precision": shipped.train.precision,
        "channels_last": shipped.train.channels_last,
    }
    for name in quality.SHARED_WITH_CPU_FAST:
        assert p[name] == fields[name], name
    assert set(quality.SHARED_WITH_CPU_FAST) == set(fields)
    # crops: the 40-epoch protocol keeps >= 20%, the ~15-epoch budgeted config takes >= 35% (both measured)
    for view in (shipped.augment.view1, shipped.augment.view2):
        assert view.crop_scale == [0.35, 1.0] and p["crop_min_scale"] == 0.2
    assert shipped.data.dataset == "cifar10" and (shipped.eval.knn_k, shipped.eval.knn_temperature) == (200, 0.1)
    # the shipped config is budgeted in minutes; the protocol in epochs, within the config's cap
    assert shipped.train.time_budget_minutes == 30 and p["epochs"] <= shipped.train.epochs


def test_every_preset_gets_the_same_views_backbone_and_schedule(quality: ModuleType, tmp_path: Path) -> None:
    args = quality.parse_args(["--runs", str(tmp_path), "--image-size", "20"])
    configs = {m: load_config(None, quality.protocol_overrides(m, args)) for m in list_methods()}
    reference = configs["vicreg"]
    assert reference.augment.image_size == 20
    for method, config in configs.items():
        assert config.method.name == method
        assert config.augment == reference.augment, method  # the presets' own recipes differ (BYOL solarizes)
        assert config.model.backbone == reference.model.backbone and config.model.width == reference.model.width
        assert config.model.projector_hidden == reference.model.projector_hidden
        assert (config.train.epochs, config.train.batch_size, config.optim.warmup_epochs) == (
            reference.train.epochs, reference.train.batch_size, reference.optim.warmup_epochs)
    # the method's paper keeps its optimizer: SimSiam's SGD is not VICReg's LARS
    assert configs["simsiam"].optim.optimizer == "sgd" and configs["vicreg"].optim.optimizer == "lars"


def test_method_views_keep_each_papers_recipe(quality: ModuleType, tmp_path: Path) -> None:
    args = quality.parse_args(["--runs", str(tmp_path), "--augment", "method"])
    byol = load_config(None, quality.protocol_overrides("byol", args)).augment
    simclr = load_config(None, quality.protocol_overrides("simclr", args)).augment
    assert byol.view2.solarize_prob > 0 and simclr.view2.solarize_prob == 0


def test_quick_quality_benchmark_writes_every_preset(quality: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "quality.csv"
    rows = quality.main(["--quick", "--out", str(out), "--runs", str(tmp_path / "runs")])
    assert [r["method"] for r in rows] == list_methods()
    with open(out, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == len(rows)
    for row in written:
        for key in ("knn_top1", "linear_top1", "random_init_knn_top1", "raw_pixels_knn_top1"):
            assert 0 <= float(row[key]) <= 100, key
        assert float(row["train_images_per_s"]) > 0 and float(row["wall_s"]) >= float(row["train_s"]) > 0
        assert float(row["peak_rss_mb"]) > 0
        assert row["torch"] and row["date"] and int(row["threads"]) >= 1 and row["machine"]
    # the baselines do not depend on the preset: same data, same seeded backbone initialization
    assert len({row["raw_pixels_knn_top1"] for row in written}) == 1
    assert len({row["random_init_knn_top1"] for row in written}) == 1


def test_gpu_protocol_matches_lightlys_benchmark(gpu: ModuleType, tmp_path: Path) -> None:
    args = gpu.parse_args(["--runs", str(tmp_path)])
    for method in list_methods():
        config = load_config(None, gpu.protocol_overrides(method, args))
        assert (config.model.backbone, config.model.width, config.model.cifar_stem) == ("resnet18", 1.0, True)
        assert (config.train.batch_size, config.train.epochs) == (512, 200)
        assert (config.eval.knn_k, config.eval.knn_temperature, config.train.knn_every) == (200, 0.1, 5)
        assert config.train.precision == "auto" and config.data.max_train_images is None


def test_epoch_watcher_times_rows_as_they_appear(gpu: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "epochs.csv"
    watcher = gpu.EpochWatcher(path, "m", interval=0.01)
    watcher.start()
    time.sleep(0.05)
    path.write_text("epoch,step,loss,knn_top1\n0,4,1.0,\n")
    time.sleep(0.15)
    with open(path, "a") as handle:
        handle.write("1,8,0.9,0.625\n")
    watcher.done.set()
    watcher.join()
    assert [(r["epoch"], r["knn"]) for r in watcher.rows] == [(1, None), (2, 62.5)]
    assert watcher.rows[0]["seconds"] >= 0.04 and watcher.rows[1]["seconds"] >= 0.1
    assert not any(t.name == watcher.name for t in threading.enumerate())


def test_quick_gpu_benchmark_runs_one_epoch_per_preset_on_cpu(gpu: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "gpu.csv"
    rows = gpu.main(["--quick", "--out", str(out), "--runs", str(tmp_path / "runs")])
    assert [r["method"] for r in rows] == list_methods()
    with open(out, newline="") as handle:
        written = list(csv.DictReader(handle))
    for row in written:
        assert int(row["epochs"]) == 1 and float(row["s_per_epoch"]) > 0
        assert row["first_knn"] == f"1:{float(row['knn_top1']):.2f}"  # the final kNN, after epoch 1
        assert 0 <= float(row["knn_top1"]) <= 100
        assert row["device"] == "cpu" and row["torch"] and row["date"]


def test_a_crash_keeps_the_rows_of_the_presets_already_done(quality: ModuleType, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "quality.csv"

    def fake_run(method: str, _args) -> dict:
        if method == "simclr":
            raise RuntimeError("killed")
        return {"method": method, "knn_top1": 50.0}

    monkeypatch.setattr(quality, "run", fake_run)
    with pytest.raises(RuntimeError, match="killed"):
        quality.main(["--out", str(out), "--methods", "vicreg", "barlow_twins", "simclr", "byol"])
    with open(out, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [row["method"] for row in written] == ["vicreg", "barlow_twins"]
    assert all(row["date"] and row["setting"] for row in written)
    assert not list(tmp_path.glob("*.partial"))  # the CSV is replaced atomically

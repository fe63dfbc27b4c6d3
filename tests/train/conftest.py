"""Shared fixtures: a tiny, fast run configuration on the offline digits dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from covssl.config import RunConfig

from covssl.resolve import load_config


def tiny_config(tmp_path: Path, method: str = "vicreg", *extra: str) -> RunConfig:
    """A run that takes seconds: 64 digits, small ConvNet, small projector, no progress bar."""
    overrides = [
        f"method.name={method}",
        "data.max_train_images=64",
        "data.max_eval_images=64",
        "model.backbone=small_convnet",
        "model.width=0.25",
        "model.projector_hidden=[64]",
        "model.projector_out=32",
        "train.batch_size=16",
        "train.epochs=2",
        "train.log_every=1",
        "train.progress=false",
        f"train.out_dir={tmp_path / 'run'}",
        "eval.knn_k=10",
        *extra,
    ]
    if method in ("simsiam", "byol"):
        overrides.append("model.predictor_hidden=16")
    return load_config(None, overrides)


@pytest.fixture
def make_config(tmp_path: Path):
    return lambda method="vicreg", *extra: tiny_config(tmp_path, method, *extra)

"""Shared fixtures: a tiny, fast run configuration on the offline digits dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from covssl.config import RunConfig

from covssl.resolve import load_config
from tiny_run import TINY, method_overrides


def tiny_config(tmp_path: Path, method: str = "vicreg", *extra: str) -> RunConfig:
    """A run that takes seconds: 64 digits, small ConvNet, small projector, no progress bar."""
    overrides = [
        f"method.name={method}", *TINY, "train.epochs=2", f"train.out_dir={tmp_path / 'run'}",
        *extra, *method_overrides(method),
    ]
    return load_config(None, overrides)


@pytest.fixture
def make_config(tmp_path: Path):
    return lambda method="vicreg", *extra: tiny_config(tmp_path, method, *extra)

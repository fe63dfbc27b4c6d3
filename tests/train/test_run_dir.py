"""The run folder: what it records for reproduction, and how it refuses to mix two runs."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import covssl
from covssl.config import from_yaml
from covssl.train.checkpoint import list_checkpoints, save_checkpoint
from covssl.train.run_dir import config_differences, prepare_run_dir

from ._runs import tiny_config


def _independent_git(*args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    out = subprocess.run(["git", *args], cwd=Path(covssl.__file__).parent, capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def test_the_run_folder_records_config_versions_and_commit(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run")
    run_dir = prepare_run_dir(config, resume=False, overwrite=False)
    assert from_yaml((run_dir / "config.yaml").read_text()) == config  # the resolved config, every key
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["covssl"] == covssl.__version__ and meta["torch"] == torch.__version__
    head = _independent_git("rev-parse", "HEAD")
    assert meta["git_commit"] == (head.strip() if head else None)
    status = _independent_git("status", "--porcelain", "--untracked-files=no", "--", ".")
    assert meta["git_dirty"] == (bool(status.strip()) if status is not None else None)
    assert isinstance(meta["command"], list) and meta["python"] and meta["platform"] and meta["started"]


def _fake_run(tmp_path: Path, *extra: str) -> Path:
    config = tiny_config(tmp_path / "run", *extra)
    run_dir = prepare_run_dir(config, resume=False, overwrite=False)
    save_checkpoint({"model": {}, "step": 4}, run_dir, 4, keep=2)
    (run_dir / "steps.csv").write_text("step,loss\n1,0.5\n")
    return run_dir


def test_a_folder_holding_a_run_is_left_untouched_without_a_flag(tmp_path: Path) -> None:
    run_dir = _fake_run(tmp_path)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    with pytest.raises(ValueError, match="already holds a run; pass --resume to continue it, --overwrite"):
        prepare_run_dir(tiny_config(run_dir), resume=False, overwrite=False)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_overwrite_removes_checkpoints_sidecars_and_logs(tmp_path: Path) -> None:
    run_dir = _fake_run(tmp_path)
    (run_dir / ".checkpoint-00000008.pt.tmp-1").write_bytes(b"")
    (run_dir / "notes.txt").write_text("the user's own file")
    prepare_run_dir(tiny_config(run_dir), resume=False, overwrite=True)
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "meta.json", "notes.txt"]


@pytest.mark.parametrize(
    "override, key",
    [
        ("method.name=barlow_twins", "method.name"),
        ("model.projector_out=16", "model.projector_out"),
        ("train.seed=1", "train.seed"),
        ("train.batch_size=8", "train.batch_size"),
        ("data.max_train_images=32", "data.max_train_images"),
    ],
)
def test_resume_refuses_a_different_run(tmp_path: Path, override: str, key: str) -> None:
    run_dir = _fake_run(tmp_path)
    with pytest.raises(ValueError, match=f"holds a different run; --resume cannot continue it with {key}: "):
        prepare_run_dir(tiny_config(run_dir, override), resume=True, overwrite=False)
    assert len(list_checkpoints(run_dir)) == 1


def test_resume_accepts_a_longer_run_warns_and_keeps_the_history(tmp_path: Path, caplog) -> None:
    run_dir = _fake_run(tmp_path)
    first = json.loads((run_dir / "meta.json").read_text())
    with caplog.at_level(logging.WARNING, logger="covssl.train.run_dir"):
        prepare_run_dir(tiny_config(run_dir, "train.epochs=9"), resume=True, overwrite=False)
    assert "changed settings: train.epochs: 6 -> 9" in caplog.text
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["history"] == [first]
    assert from_yaml((run_dir / "config.yaml").read_text()).train.epochs == 9


def test_config_differences_lists_changed_keys_only(tmp_path: Path) -> None:
    a = tiny_config(tmp_path)
    b = tiny_config(tmp_path, "optim.lr=0.5", "augment.view1.hflip_prob=0.25")
    assert config_differences(a, b) == {
        "augment.view1.hflip_prob": (a.augment.view1.hflip_prob, 0.25),
        "optim.lr": (a.optim.lr, 0.5),
    }
    assert config_differences(a, a) == {}

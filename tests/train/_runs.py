"""Shared helpers for the training tests: a tiny run, its CLI arguments, crash subprocesses."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch

from covssl.config import RunConfig

from covssl.resolve import load_config
from covssl.train.checkpoint import load_latest
from tiny_run import STEPS_PER_EPOCH
from tiny_run import TINY as SHARED_TINY

CHILD = Path(__file__).with_name("_child.py")
EPOCHS = 6
TINY = [*SHARED_TINY, f"train.epochs={EPOCHS}"]  # tests/tiny_run.py: 4 steps per epoch


def tiny_args(run_dir: Path, *extra: str) -> list[str]:
    """``key=value`` overrides of the tiny run writing to ``run_dir``."""
    return [*TINY, f"train.out_dir={run_dir}", *extra]


# `covssl train` (what the crash child runs) starts from this shipped config; so does the reference
CLI_DEFAULT_CONFIG = "digits/demo"


def tiny_config(run_dir: Path, *extra: str) -> RunConfig:
    return load_config(CLI_DEFAULT_CONFIG, tiny_args(run_dir, *extra))


def start_child(mode: str, step: int, run_dir: Path, *extra: str) -> subprocess.Popen:
    """Start ``covssl train`` in a fresh process (see _child.py for the modes); output to a log file."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(run_dir.parent / f"{run_dir.name}-{mode}.log", "w")  # a file: a full pipe would block the child
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(CHILD), mode, str(step), *tiny_args(run_dir, *extra)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[2],
    )


def child_log(run_dir: Path, mode: str) -> str:
    return (run_dir.parent / f"{run_dir.name}-{mode}.log").read_text()


def logged_steps(run_dir: Path) -> list[int]:
    """The step numbers in steps.csv (complete lines only: the file may be mid-write)."""
    path = run_dir / "steps.csv"
    if not path.is_file():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1].splitlines()
    return [int(row["step"]) for row in csv.DictReader(complete)]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    loaded = load_latest(run_dir)
    assert loaded is not None, f"no checkpoint in {run_dir}"
    return loaded[0]["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"

"""The run folder: resolved config, versions and git commit, logs, checkpoints, results."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import torch

import covssl
from covssl.config import RunConfig, to_yaml
from covssl.train.checkpoint import list_checkpoints

_RUN_FILES = ("config.yaml", "meta.json", "steps.csv", "epochs.csv", "results.json")


def git_commit() -> str | None:
    """The commit of the covssl source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(covssl.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def prepare_run_dir(config: RunConfig, resume: bool, overwrite: bool) -> Path:
    """Create (or reuse, when resuming) the run folder and record the config and versions.

    A folder that already holds a run is refused unless ``resume`` (continue it) or
    ``overwrite`` (delete its checkpoints and logs first).
    """
    run_dir = Path(config.train.out_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"train.out_dir: {run_dir} exists and is not a folder")
    holds_run = run_dir.is_dir() and (list_checkpoints(run_dir) or (run_dir / "config.yaml").exists())
    if holds_run and not resume:
        if not overwrite:
            raise ValueError(
                f"train.out_dir: {run_dir} already holds a run; pass --resume to continue it, "
                "--overwrite to replace it, or choose another train.out_dir"
            )
        for path in list_checkpoints(run_dir):
            path.unlink()
        for name in _RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(config))
    except OSError as error:
        raise ValueError(f"train.out_dir: cannot write to {run_dir} ({error.strerror})") from None
    meta = {
        "covssl": covssl.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
    }
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return run_dir

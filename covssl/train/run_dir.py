"""The run folder: resolved config, versions and git commit, logs, checkpoints, results.

A folder that already holds a run is never reused by accident: a new run is refused unless
``--resume`` (continue it: only with a configuration that describes the same run) or
``--overwrite`` (delete its checkpoints and logs first). ``meta.json`` records what is needed
to reproduce the result: covssl, torch and Python versions, the platform, the git commit of the
covssl sources and whether they had uncommitted changes, the command line, and, after resumes,
the same record of every earlier invocation.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

import covssl
from covssl.config import RunConfig, from_yaml, to_yaml
from covssl.train.checkpoint import list_checkpoints, remove_checkpoints

log = logging.getLogger(__name__)

_RUN_FILES = ("config.yaml", "meta.json", "steps.csv", "epochs.csv", "results.json")
# Keys that make a run what it is: resuming with another value would load weights into a
# different model, or continue a different data order; changing anything else only warns.
_IDENTITY_KEYS = ("model", "method", "data.dataset", "data.max_train_images", "train.seed",
                  "train.batch_size", "optim.optimizer")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(covssl.__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    """The commit of the covssl source tree, when it is a git checkout."""
    out = _git("rev-parse", "HEAD")
    return out.strip() or None if out is not None else None


def git_dirty() -> bool | None:
    """True when the covssl sources have uncommitted changes (None outside a git checkout)."""
    out = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return None if out is None else bool(out.strip())


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_differences(old: RunConfig, new: RunConfig) -> dict[str, tuple[Any, Any]]:
    """``{"section.key": (old, new)}`` for every value that differs between two configs."""
    a = _flatten(OmegaConf.to_container(OmegaConf.structured(old)))
    b = _flatten(OmegaConf.to_container(OmegaConf.structured(new)))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _check_same_run(run_dir: Path, config: RunConfig) -> None:
    """Refuse to resume a run folder with a configuration describing another run."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    try:
        old = from_yaml(saved.read_text())
    except ValueError as error:
        raise ValueError(
            f"train.out_dir: cannot resume {run_dir}, its config.yaml cannot be read ({error}); "
            "use --overwrite or another train.out_dir"
        ) from None
    changed = config_differences(old, config)
    locked = {k: v for k, v in changed.items() if any(k == i or k.startswith(i + ".") for i in _IDENTITY_KEYS)}
    if locked:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in locked.items()))
        raise ValueError(
            f"train.out_dir: {run_dir} holds a different run; --resume cannot continue it with {listed}. "
            "Use --overwrite to replace it, or another train.out_dir"
        )
    if changed:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        log.warning("resuming %s with changed settings: %s", run_dir, listed)


def run_metadata() -> dict[str, Any]:
    """Versions, platform, git state and command line of this invocation."""
    return {
        "covssl": covssl.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "command": list(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def prepare_run_dir(config: RunConfig, resume: bool, overwrite: bool) -> Path:
    """Create (or reuse, when resuming) the run folder and record the config and versions.

    Args:
        config: the resolved configuration; ``config.train.out_dir`` is the folder.
        resume: continue the run the folder holds (refused if it is a different run).
        overwrite: delete the run the folder holds first.

    Returns:
        The run folder, holding ``config.yaml`` and ``meta.json``.

    Raises:
        ValueError: the folder holds a run and neither flag is set, holds a different run and
            ``resume`` is set, is a file, or cannot be written.

    Examples:
        >>> run_dir = prepare_run_dir(load_config(), resume=False, overwrite=False)  # doctest: +SKIP
        >>> sorted(p.name for p in run_dir.iterdir())  # doctest: +SKIP
        ['config.yaml', 'meta.json']
    """
    run_dir = Path(config.train.out_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"train.out_dir: {run_dir} exists and is not a folder")
    holds_run = run_dir.is_dir() and bool(list_checkpoints(run_dir) or (run_dir / "config.yaml").exists())
    if holds_run and resume:
        _check_same_run(run_dir, config)
    elif holds_run:
        if not overwrite:
            raise ValueError(
                f"train.out_dir: {run_dir} already holds a run; pass --resume to continue it, "
                "--overwrite to replace it, or choose another train.out_dir"
            )
        remove_checkpoints(run_dir)
        for name in _RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
    meta = run_metadata()
    previous = run_dir / "meta.json"
    if resume and previous.is_file():
        try:
            old = json.loads(previous.read_text())
            meta["history"] = [*old.pop("history", []), old]  # every earlier invocation, oldest first
        except (ValueError, AttributeError):
            pass  # an unreadable record is not worth refusing the resume over
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(config))
        (run_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    except OSError as error:
        raise ValueError(f"train.out_dir: cannot write to {run_dir} ({error.strerror or error})") from None
    return run_dir

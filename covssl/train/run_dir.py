"""The run folder: resolved config, versions and git commit, logs, checkpoints, results.

A folder holds a run once it holds a checkpoint. Such a folder is never reused by accident: a
new run is refused unless ``--resume`` (continue it: only with a configuration that describes
the same run) or ``--overwrite`` (delete its checkpoints and logs first); the two together are
an error. A folder without a checkpoint (a run that failed before its first step left its
config.yaml behind) is simply reused by the next run; ``--resume`` on it, or on a folder that
does not exist, is an error: there is nothing to resume. config.yaml and meta.json are written
atomically (a kill leaves the old or the new file, never an empty one). ``meta.json`` records what is needed
to reproduce the result: covssl, torch and Python versions, the platform, the git commit of the
covssl sources and whether they had uncommitted changes, the command line, and, after resumes,
the same record of every earlier invocation.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
# Keys a resume may change: they decide where and how visibly the steps run, not what they compute.
_RESUME_FREE_KEYS = ("train.progress", "train.device", "train.keep_checkpoints", "data.root", "data.download",
                     "data.cache_dir", "train.out_dir")
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


class RunFinished(Exception):
    """``--resume`` on a run that has written its results: there is nothing left to train."""


def recorded_config(run_dir: Path) -> RunConfig | None:
    """The config.yaml a run folder records (None when there is none).

    Raises:
        ValueError: the file cannot be read; the advice never deletes the checkpoints.
    """
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return None
    try:
        return from_yaml(saved.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(
            f"train.out_dir: cannot resume {run_dir}, its config.yaml cannot be read ({error}); "
            "give the run's configuration with -c FILE (and its overrides) to resume it"
        ) from None


def check_run_dir(config: RunConfig, resume: bool, overwrite: bool) -> None:
    """The checks every rank can make before touching the folder (read only).

    Raises:
        ValueError: both flags; ``resume`` on a folder that is missing, is a file or holds no checkpoint.
        RunFinished: ``resume`` on a run that has written ``results.json``.
    """
    run_dir = Path(config.train.out_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: --resume continues the run "
                         f"in {run_dir}, --overwrite deletes it; pass one of them")
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"train.out_dir: {run_dir} exists and is not a folder")
    if not resume:
        return
    if not run_dir.is_dir() or not list_checkpoints(run_dir):
        where = "does not exist" if not run_dir.is_dir() else "holds no checkpoint"
        raise ValueError(f"train.out_dir: nothing to resume, {run_dir} {where}; run without --resume to start it")
    if (run_dir / "results.json").is_file():
        raise RunFinished(f"the run in {run_dir} is finished (results in {run_dir / 'results.json'}); "
                          "nothing to resume")


def _check_same_run(run_dir: Path, config: RunConfig) -> None:
    """Refuse to resume a run folder with a configuration that changes the recorded one."""
    old = recorded_config(run_dir)
    if old is None:
        return
    changed = config_differences(old, config)
    refused = {k: v for k, v in changed.items() if not any(k == i or k.startswith(i + ".") for i in _RESUME_FREE_KEYS)}
    if refused:
        identity = any(k == i or k.startswith(i + ".") for k in refused for i in _IDENTITY_KEYS)
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
        what = "a different run" if identity else "a run recorded with other settings"
        raise ValueError(
            f"train.out_dir: {run_dir} holds {what}; --resume cannot continue it with {listed}. "
            "A resume continues the recorded config.yaml: drop these overrides, or start a new run "
            "in another train.out_dir"
        )
    if changed:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        log.warning("resuming %s with changed settings: %s", run_dir, listed)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: a kill leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir/.lock`` (creating the folder) for the life of a run.

    Raises:
        ValueError: another process holds it (named with its PID and start time).
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / ".lock", "a+")
    except OSError as error:
        raise ValueError(f"train.out_dir: cannot write to {run_dir} ({error.strerror or error})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ValueError(f"train.out_dir: {run_dir} is in use by {holder}; wait for it to end, "
                             "or choose another train.out_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} (started {time.strftime('%Y-%m-%dT%H:%M:%S%z')})\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


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


def _write_atomically(path: Path, text: str) -> None:
    """Write a temporary file next to ``path``, then rename it over ``path`` (removed on failure)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
            ``resume`` is set, holds nothing to resume, both flags are set, is a file, or cannot
            be written.

    Examples:
        >>> run_dir = prepare_run_dir(load_config(), resume=False, overwrite=False)  # doctest: +SKIP
        >>> sorted(p.name for p in run_dir.iterdir())  # doctest: +SKIP
        ['config.yaml', 'meta.json']
    """
    run_dir = Path(config.train.out_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: --resume continues the run in "
                         f"{run_dir}, --overwrite deletes it; pass one")
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"train.out_dir: {run_dir} exists and is not a folder")
    holds_run = run_dir.is_dir() and bool(list_checkpoints(run_dir))
    if resume and not holds_run:
        where = "does not exist" if not run_dir.exists() else "holds no checkpoint"
        raise ValueError(f"--resume: nothing to resume, {run_dir} {where}; run without --resume to start the run")
    if holds_run and resume:
        _check_same_run(run_dir, config)
    elif run_dir.is_dir() and not holds_run:  # leftovers of a run that stopped before its first checkpoint
        for name in _RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
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
        _write_atomically(run_dir / "config.yaml", to_yaml(config))
        _write_atomically(run_dir / "meta.json", json.dumps(meta, indent=2) + "\n")
    except OSError as error:
        raise ValueError(f"train.out_dir: cannot write to {run_dir} ({error.strerror or error})") from None
    return run_dir

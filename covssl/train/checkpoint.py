"""Checkpoints that survive crashes: atomic writes, the last K kept, safe loading.

A checkpoint is a dict of tensors, numbers and strings written with ``torch.save`` to a
temporary file, fsynced, then renamed over its final name (``os.replace`` is atomic on POSIX):
a kill at any moment leaves either the previous file or the new one, never half of one.
Loading uses ``weights_only=True``, which refuses any pickled object other than tensors and
plain containers — a checkpoint from a stranger cannot run code. A file that fails to load
(truncated, corrupt) is reported and the previous good checkpoint is used.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

_NAME = re.compile(r"^checkpoint-(\d{8})\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints in a run folder, oldest first."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if _NAME.match(p.name))


def atomic_save(state: dict[str, Any], path: Path) -> None:
    """torch.save to ``path`` atomically (temporary file + fsync + rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def save_checkpoint(state: dict[str, Any], run_dir: Path, step: int, keep: int) -> Path:
    """Write checkpoint-<step>.pt and delete all but the newest ``keep`` checkpoints."""
    path = checkpoint_path(run_dir, step)
    atomic_save(state, path)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint_file(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one checkpoint safely; ValueError with the reason if it is corrupt or unsafe."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # truncated zip, bad pickle, forbidden global: all mean "not usable"
        raise ValueError(f"checkpoint {path}: cannot be loaded safely ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise ValueError(f"checkpoint {path}: not a covssl checkpoint (expected a dict with 'model' and 'step')")
    return state


def load_latest(run_dir: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint that loads, falling back over corrupt ones with a warning."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return load_checkpoint_file(path, map_location), path
        except ValueError as error:
            log.warning("%s; falling back to the previous checkpoint", error)
    return None

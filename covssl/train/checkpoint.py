"""Checkpoints that survive crashes and strangers: atomic writes, checksums, safe loading.

Writing: ``torch.save`` streams into a temporary file while a sha256 of the bytes is computed;
the file is fsynced, a ``<name>.sha256`` sidecar (``sha256sum`` format) is written the same
way, then both are renamed into place (``os.replace`` is atomic on POSIX) and the folder is
fsynced. A kill at any moment leaves the previous checkpoints intact and at worst an orphan
sidecar or a temporary file, which the next save removes. The last K checkpoints are kept.

Loading checks, in order: the file exists; its sha256 equals the sidecar's (a truncated,
bit-flipped or half-copied file fails here); ``torch.load(weights_only=True)`` accepts it (a
pickle that names any callable other than tensors and plain containers -- ``os.system``,
``builtins.exec`` -- is refused before anything runs); it is a dict carrying covssl's format
tag. :func:`load_latest` walks back from the newest checkpoint to the first one that passes,
saying which files it skipped and why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

log = logging.getLogger(__name__)

FORMAT = "covssl-checkpoint-1"  # stored in every checkpoint; bump when the layout changes
REQUIRED_KEYS = ("model", "step")
_NAME = re.compile(r"^checkpoint-(\d{8})\.pt$")
_SIDECAR = re.compile(r"^checkpoint-(\d{8})\.pt\.sha256$")
_TMP = re.compile(r"^\.checkpoint-\d{8}\.pt(\.sha256)?\.tmp-\d+$")
_CHUNK = 1 << 20  # hash 1 MiB at a time: constant memory for any checkpoint size


class CheckpointError(ValueError):
    """A checkpoint file that must not be used: corrupt, truncated, unsafe or not covssl's."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """``run_dir/checkpoint-<step, 8 digits>.pt``: names sort in step order."""
    return run_dir / f"checkpoint-{step:08d}.pt"


def checksum_path(path: Path) -> Path:
    """The sha256 sidecar of a checkpoint: ``<name>.sha256`` next to it."""
    return path.with_name(path.name + ".sha256")


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints in a run folder, oldest first."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if _NAME.match(p.name))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingWriter:
    """A write-only file wrapper that hashes what passes through (torch.save writes sequentially)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)  # makes the renames themselves durable
    finally:
        os.close(fd)


def _write_durably(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, flush and fsync it; return it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:  # disk full, interrupted: leave no half-written temporary file behind
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_save(state: dict[str, Any], path: Path) -> str:
    """``torch.save`` to ``path`` atomically, with its sha256 sidecar ``<path>.sha256``.

    The sidecar is renamed into place before the checkpoint: a crash between the two renames
    leaves an orphan sidecar (ignored, then removed), never a checkpoint without its checksum.

    Args:
        state: tensors, numbers, strings and plain containers (what ``weights_only`` loads back).
        path: the final file name.

    Returns:
        The hex sha256 of the written bytes.

    Examples:
        >>> digest = atomic_save({"model": {}, "step": 0}, Path("run/checkpoint-00000000.pt"))  # doctest: +SKIP
        >>> digest == file_sha256(Path("run/checkpoint-00000000.pt"))  # doctest: +SKIP
        True
    """
    hashed: list[str] = []

    def write_state(handle: BinaryIO) -> None:
        writer = _HashingWriter(handle)
        torch.save(state, writer)
        hashed.append(writer.digest.hexdigest())

    tmp = _write_durably(path, write_state)
    sidecar = checksum_path(path)
    line = f"{hashed[0]}  {path.name}\n".encode()  # `sha256sum -c` reads this format
    tmp_sidecar = _write_durably(sidecar, lambda handle: handle.write(line))
    os.replace(tmp_sidecar, sidecar)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return hashed[0]


def remove_checkpoints(run_dir: Path, keep: int = 0) -> None:
    """Delete all but the newest ``keep`` checkpoints, their sidecars, orphan sidecars and temp files."""
    if not run_dir.is_dir():
        return
    kept = list_checkpoints(run_dir)[-keep:] if keep > 0 else []
    kept_names = {p.name for p in kept} | {checksum_path(p).name for p in kept}
    for path in run_dir.iterdir():
        is_ours = _NAME.match(path.name) or _SIDECAR.match(path.name) or _TMP.match(path.name)
        if is_ours and path.name not in kept_names:
            path.unlink(missing_ok=True)


def save_checkpoint(state: dict[str, Any], run_dir: Path, step: int, keep: int) -> Path:
    """Write checkpoint-<step>.pt (+ sidecar) and delete all but the newest ``keep`` checkpoints."""
    path = checkpoint_path(run_dir, step)
    atomic_save({**state, "format": FORMAT}, path)
    remove_checkpoints(run_dir, keep)
    return path


def verify_checksum(path: Path) -> None:
    """Raise CheckpointError unless ``path``'s sha256 equals the one in its sidecar."""
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        raise CheckpointError(
            f"checkpoint {path}: no checksum file {sidecar.name} next to it (the write was interrupted, "
            "or the file was copied without it); refusing an unverifiable checkpoint"
        )
    recorded = sidecar.read_text(errors="replace").split()
    actual = file_sha256(path)
    if not recorded or recorded[0].lower() != actual:
        expected = recorded[0][:16] if recorded else "nothing"
        raise CheckpointError(
            f"checkpoint {path}: sha256 mismatch (file {actual[:16]}..., {sidecar.name} {expected}...): "
            f"the file is truncated or corrupt ({path.stat().st_size} bytes)"
        )


def load_checkpoint_file(
    path: Path, map_location: str | torch.device = "cpu", verify: bool = True
) -> dict[str, Any]:
    """Load one checkpoint safely.

    Args:
        path: a ``checkpoint-<step>.pt`` file.
        map_location: device the tensors are loaded onto.
        verify: check the sha256 sidecar first (False only for files known to be intact).

    Returns:
        The checkpoint dict (``model``, ``step``, ... and ``format``).

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: (a ValueError) corrupt, truncated, unverifiable, unsafe to unpickle,
            or not a covssl checkpoint; the message says which.

    Examples:
        >>> state = load_checkpoint_file(Path("runs/default/checkpoint-00000008.pt"))  # doctest: +SKIP
        >>> state["step"]  # doctest: +SKIP
        8
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file {path}")
    if verify:
        verify_checksum(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then rejects
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        named = [line for line in lines if "GLOBAL" in line]
        if named:  # weights_only's unpickler names the first forbidden callable before calling anything
            raise CheckpointError(
                f"checkpoint {path}: refused: it holds pickled Python objects other than tensors and plain "
                f"containers, and unpickling them could run arbitrary code ({named[-1]})"
            ) from None
        detail = next((line for line in lines if line.startswith("Unsupported")), lines[0] if lines else "")
        raise CheckpointError(
            f"checkpoint {path}: cannot be read, the file is truncated, corrupt or not written by torch.save "
            f"(UnpicklingError: {detail})"
        ) from None
    except Exception as error:  # a zip that ends early, garbage bytes: the file is not usable
        raise CheckpointError(
            f"checkpoint {path}: cannot be read, the file is truncated, corrupt or not written by torch.save "
            f"({type(error).__name__}: {error})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(k not in state for k in REQUIRED_KEYS):
        found = sorted(map(str, state))[:8] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"checkpoint {path}: not a covssl checkpoint (expected a dict with format={FORMAT!r} and keys "
            f"{list(REQUIRED_KEYS)}, got {found})"
        )
    return state


def load_latest(run_dir: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint of ``run_dir`` that passes every check, falling back over bad ones.

    Returns:
        ``(state, path)``, or None when the folder holds no checkpoint at all.

    Raises:
        CheckpointError: checkpoints exist but none passes (each one's reason is listed): a run
            is never silently restarted from scratch on top of damaged checkpoints.
    """
    failures: list[str] = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            state = load_checkpoint_file(path, map_location)
        except (CheckpointError, FileNotFoundError) as error:
            log.warning("%s; falling back to the previous checkpoint", error)
            failures.append(str(error))
            continue
        if failures:
            log.warning("using %s (step %s), the newest checkpoint that passes its checks", path, state["step"])
        return state, path
    if failures:
        raise CheckpointError(f"{run_dir}: no usable checkpoint; " + "; ".join(failures))
    return None

"""The decoded-image cache: uint8 ``.npy`` arrays, memory-mapped on later loads.

Decoding 60,000 small JPEGs takes seconds to minutes; reading them back from one ``.npy`` file
with ``np.load(mmap_mode="r")`` takes milliseconds and shares the page cache between processes
(DataLoader workers, distributed ranks). An entry is a folder holding ``images.npy``,
``labels.npy`` and ``meta.json``; ``meta.json`` is written last and is the commit record: an
entry without it, or whose fingerprint no longer matches the source, is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CACHE_VERSION = 1  # bump when the layout of an entry changes, so old entries are rebuilt


def default_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the cache folder: ``cache_dir``, else ``$COVSSL_CACHE``, else ``~/.cache/covssl``.

    Args:
        cache_dir: an explicit folder, or None for the default.

    Returns:
        The folder as an absolute ``Path`` (not created).

    Examples:
        >>> default_cache_dir("/tmp/c").as_posix()
        '/tmp/c'
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser().absolute()
    env = os.environ.get("COVSSL_CACHE")
    if env:
        return Path(env).expanduser().absolute()
    return (Path.home() / ".cache" / "covssl").absolute()


def fingerprint(files: Sequence[str], root: str | os.PathLike[str]) -> dict[str, Any]:
    """Summarize a set of source files cheaply (one ``stat`` each, no reading).

    The brief's three numbers (file count, total size, newest mtime) miss a file moved from
    one class folder to another, which changes its label; a hash of the sorted relative paths
    catches that at no extra I/O.

    Args:
        files: the source files (path strings below ``root``), in their dataset order: the
            hash covers the order too, since it decides which label each file gets.
        root: the folder the paths are made relative to.

    Returns:
        ``{"count", "total_bytes", "newest_mtime_ns", "paths_sha256"}``.

    Examples:
        >>> fingerprint([], ".")["count"]
        0
    """
    total, newest = 0, 0
    digest = hashlib.sha256()
    prefix = os.path.join(os.fspath(root), "")
    for path in files:
        st = os.stat(path)
        total += st.st_size
        newest = max(newest, st.st_mtime_ns)
        rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)
        digest.update(rel.replace(os.sep, "/").encode() + b"\0")
    return {"count": len(files), "total_bytes": total, "newest_mtime_ns": newest, "paths_sha256": digest.hexdigest()}


def entry_dir(cache_dir: Path, name: str, key: dict[str, Any]) -> Path:
    """The folder of one cache entry: readable name + a hash of everything that defines it."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / "decoded" / f"{name}-{digest}"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows: readers see the old or the new file
    finally:
        tmp.unlink(missing_ok=True)


def open_images_for_writing(entry: Path, shape: tuple[int, ...]) -> tuple[np.memmap, Path]:
    """Start a new entry: drop its commit record and open a temporary ``.npy`` to decode into.

    Decoding straight into a memory-mapped file keeps peak RAM at one chunk, not the dataset.

    Returns:
        ``(array, tmp_path)``; pass both to :func:`commit_entry`.
    """
    entry.mkdir(parents=True, exist_ok=True)
    # Invalidate first: a crash from here on leaves no meta.json, so the next load rebuilds.
    (entry / "meta.json").unlink(missing_ok=True)
    tmp = entry / f".images.{uuid.uuid4().hex}.tmp.npy"
    return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape), tmp


def commit_entry(entry: Path, images: np.memmap, images_tmp: Path, labels: np.ndarray, meta: dict[str, Any]) -> None:
    """Publish an entry: move the images and labels into place, then write ``meta.json`` last."""
    images.flush()
    del images  # close the map before the rename (required on Windows)
    os.replace(images_tmp, entry / "images.npy")
    labels_tmp = entry / f".labels.{uuid.uuid4().hex}.tmp.npy"
    try:
        np.save(labels_tmp, np.asarray(labels, dtype=np.int64))
        os.replace(labels_tmp, entry / "labels.npy")
    finally:
        labels_tmp.unlink(missing_ok=True)
    record = dict(meta, version=CACHE_VERSION)
    _atomic_write_bytes(entry / "meta.json", json.dumps(record, indent=1, sort_keys=True).encode())


def discard(path: Path) -> None:
    """Remove a temporary file left by a failed build (no error if it is gone)."""
    path.unlink(missing_ok=True)


def load_entry(entry: Path, expected_fingerprint: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """Memory-map a committed entry, or return None if it is missing, stale or damaged.

    Args:
        entry: the entry folder.
        expected_fingerprint: the source's current fingerprint; any difference means stale.

    Returns:
        ``(images memmap (N, H, W, 3) uint8, labels (N,) int64, meta)`` or None.
    """
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("version") != CACHE_VERSION or meta.get("fingerprint") != expected_fingerprint:
        return None
    try:
        images = np.load(entry / "images.npy", mmap_mode="r")
        labels = np.load(entry / "labels.npy")
    except (OSError, ValueError):
        return None
    # A mismatch means files from two builds got mixed; never hand out inconsistent arrays.
    if list(images.shape) != meta.get("shape") or images.dtype != np.uint8 or labels.shape != (images.shape[0],):
        return None
    return images, labels, meta

"""Builders for tiny image trees and archives, written into pytest's tmp_path."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, array: np.ndarray) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 array; the format follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}[path.suffix.lower()]
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(array).save(path, format=fmt, **kwargs)
    return path


def make_tree(root: Path, counts: dict[str, int], size: tuple[int, int] = (6, 5), ext: str = ".png",
              seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Write ``counts[cls]`` random images per class under ``root/<cls>/``; return them per class.

    PNG is lossless, so a test can compare the decoded pixels with what it wrote.
    """
    rng = np.random.default_rng(seed)
    written: dict[str, list[np.ndarray]] = {}
    for cls, n in counts.items():
        written[cls] = []
        for i in range(n):
            arr = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            write_image(root / cls / f"img{i:03d}{ext}", arr)
            written[cls].append(arr)
    return written


def tar_bytes(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    """A tar archive (as bytes) holding ``{name: content}`` regular files, names taken verbatim."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()

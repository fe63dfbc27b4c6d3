"""Any ImageFolder tree (``root/<class>/*.jpg``), decoded once and memory-mapped afterwards.

The first load decodes every image with Pillow (in a small process pool for large trees) into
a uint8 ``.npy`` in the cache; later loads memory-map it, after checking a fingerprint of the
source files (count, total size, newest mtime, hash of the relative paths) so that an edited
tree is decoded again instead of served stale.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from covssl.data import cache
from covssl.data.arrays import ImageArrayDataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ProgressArg = bool | Callable[[int, int], None]
_CHUNK = 512  # images per worker task: large enough to amortize the pickling round trip


def _split_folder(root: Path, split: str) -> Path:
    """``root/<split>`` when root has train/ or test/ subfolders, else root itself for "train"."""
    if not root.is_dir():
        raise FileNotFoundError(f"root: image folder {root} does not exist")
    if (root / "train").is_dir() or (root / "test").is_dir():
        folder = root / split
        if not folder.is_dir():
            raise FileNotFoundError(f"root: {root} has split subfolders but no {split}/ folder")
        return folder
    if split != "train":
        raise FileNotFoundError(
            f"root: {root} has no train/ and test/ subfolders, so split={split!r} has no images; "
            "a flat root/<class>/ tree is used whole as split='train'"
        )
    return root


def scan_image_folder(
    root: str | os.PathLike[str], split: str = "train", max_per_class: int | None = None
) -> tuple[Path, list[str], list[str], np.ndarray]:
    """List the classes and image files of an ImageFolder tree, in a deterministic order.

    Classes are the sorted non-hidden subfolders; images are the files below each (searched
    recursively, sorted) whose extension is one of ``IMAGE_EXTENSIONS`` (any case).

    Args:
        root: ``root/<class>/...`` or ``root/{train,test}/<class>/...``.
        split: "train" or "test" (picks the subfolder when there is one).
        max_per_class: keep only the first k files of each class (None keeps all).

    Returns:
        ``(folder, classes, files, labels)``: files as path strings, labels an int64 array of
        shape (n_files,).

    Examples:
        >>> folder, classes, files, labels = scan_image_folder("data/cifar10")  # doctest: +SKIP
    """
    check_max_per_class(max_per_class)
    folder = _split_folder(Path(root), split)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"root: no class folders in {folder} (expected {folder}/<class>/<image files>)")
    # Plain strings, not Path objects: for 50k files Path construction alone costs ~0.4 s.
    files: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(folder, cls)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # sorted walk: stable order
            found += [os.path.join(dirpath, f) for f in sorted(filenames)
                      if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
        if not found:
            raise ValueError(f"root: class folder {folder / cls} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        found = found[:max_per_class] if max_per_class is not None else found
        files += found
        labels += [label] * len(found)
    return folder, classes, files, np.asarray(labels, dtype=np.int64)


def _decode_one(path: str, size: tuple[int, int] | None) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I"):  # 16-bit grayscale (I;16*, or I): convert("RGB") would clip at 255
                im = Image.fromarray(np.round(np.asarray(im, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8))
            rgb = im.convert("RGB")  # forces the full decode, so truncated files fail here
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot decode image {path}: {exc}") from exc
    if size is not None and (rgb.height, rgb.width) != size:
        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BICUBIC)  # PIL takes (width, height)
    return np.asarray(rgb, dtype=np.uint8)


def _decode_chunk(paths: list[str], expected: tuple[int, int], resize: bool) -> np.ndarray:
    """Decode ``paths`` into (k, H, W, 3); runs in worker processes, so it is module-level."""
    out = np.empty((len(paths), *expected, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        img = _decode_one(path, expected if resize else None)
        if img.shape[:2] != expected:
            raise ValueError(
                f"image {path} is {img.shape[0]}x{img.shape[1]} (HxW) but earlier images are "
                f"{expected[0]}x{expected[1]}; pass image_size=... to resize all images"
            )
        out[i] = img
    return out


def _auto_workers(n_files: int) -> int:
    # Measured on 2 cores: serial decoding runs ~15k CIFAR JPEGs/s, two processes ~1.6x that;
    # below a few thousand files the pool start-up is not worth it.
    if n_files < 4096 or multiprocessing.current_process().daemon:  # daemons may not fork
        return 0
    return min(4, os.cpu_count() or 1)


def decode_images(
    files: list[str], out: np.ndarray, resize: bool, workers: int = 0, progress: ProgressArg = False,
    description: str = "decoding",
) -> None:
    """Decode ``files`` into ``out`` (N, H, W, 3) uint8, in order, optionally in a process pool.

    Args:
        files: image paths, one per row of ``out``.
        out: preallocated array (may be a memmap); its H, W are the required size.
        resize: resize images of another size to (H, W) instead of raising.
        workers: worker processes (0 decodes in this process).
        progress: True for a rich progress bar, a ``callback(done, total)``, or False.
        description: label of the progress bar.
    """
    expected = (int(out.shape[1]), int(out.shape[2]))
    starts = list(range(0, len(files), _CHUNK))
    chunks = [files[s:s + _CHUNK] for s in starts]
    bar, task, callback = None, None, progress if callable(progress) else None
    if progress is True:
        from rich.console import Console
        from rich.progress import Progress

        console = Console(stderr=True)  # stdout may be a log or a pipe the caller parses
        bar = Progress(console=console, transient=True, disable=not console.is_terminal)
        bar.start()
        task = bar.add_task(description, total=len(files))
    try:
        if workers > 0:
            # fork starts in milliseconds; spawn would re-import torch in every worker (seconds).
            ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                results = pool.map(_decode_chunk, chunks, [expected] * len(chunks), [resize] * len(chunks))
                for start, arr in zip(starts, results):
                    out[start:start + len(arr)] = arr
                    _report(bar, task, callback, start + len(arr), len(files))
        else:
            for start, chunk in zip(starts, chunks):
                out[start:start + len(chunk)] = _decode_chunk(chunk, expected, resize)
                _report(bar, task, callback, start + len(chunk), len(files))
    finally:
        if bar is not None:
            bar.stop()


def _report(bar: object, task: object, callback: Callable[[int, int], None] | None, done: int, total: int) -> None:
    if bar is not None:
        bar.update(task, completed=done)  # type: ignore[attr-defined]
    if callback is not None:
        callback(done, total)


def check_max_per_class(max_per_class: object) -> None:
    """Raise ValueError unless ``max_per_class`` is None or a positive int."""
    if max_per_class is not None and (isinstance(max_per_class, bool) or not isinstance(max_per_class, int)
                                      or max_per_class <= 0):
        raise ValueError(f"max_per_class: expected a positive int or None, got {max_per_class!r}")


def as_image_size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """Normalize ``image_size`` (int or (height, width)) to a (height, width) tuple, or None."""
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    ok = isinstance(size, (tuple, list)) and len(size) == 2
    if not ok or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"image_size: expected a positive int or (height, width), got {image_size!r}")
    return int(size[0]), int(size[1])


def load_image_folder(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    name: str = "imagefolder",
    image_size: int | tuple[int, int] | None = None,
    max_per_class: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    progress: ProgressArg = True,
) -> ImageArrayDataset:
    """Load an ImageFolder tree as uint8 arrays, decoding once and memory-mapping afterwards.

    All images must share one size unless ``image_size`` is given (then each is resized with
    bicubic filtering, antialiased when shrinking). The cache entry lives under
    ``<cache_dir>/decoded/`` and is keyed by the folder's absolute path, ``image_size`` and
    ``max_per_class``; it is rebuilt when the source fingerprint changes.

    Args:
        root: ``root/<class>/*`` or ``root/{train,test}/<class>/*``.
        split: "train" or "test".
        name: dataset name stored on the result (and in the cache entry's folder name).
        image_size: int or (height, width) to resize to; None requires equal sizes.
        max_per_class: keep only the first k files (sorted) of each class.
        cache_dir: cache root (default ``$COVSSL_CACHE`` or ``~/.cache/covssl``).
        use_cache: False decodes into memory and writes nothing.
        workers: decoding processes (None: automatic, 0: in this process).
        progress: True for a progress bar (on a terminal), a ``callback(done, total)``, or False.

    Returns:
        An :class:`ImageArrayDataset`; its images are a read-only memmap when cached.

    Examples:
        >>> ds = load_image_folder("data/cifar10", "test", name="cifar10")  # doctest: +SKIP
        >>> len(ds), ds.image_size, ds.num_classes  # doctest: +SKIP
        (10000, (32, 32), 10)
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    size = as_image_size(image_size)
    folder, classes, files, labels = scan_image_folder(root, split, max_per_class)
    if workers is None:
        workers = _auto_workers(len(files))
    entry, fp = None, None
    if use_cache:
        base = cache.default_cache_dir(cache_dir)
        key = {"source": str(folder.resolve()), "image_size": size, "max_per_class": max_per_class}
        entry = cache.entry_dir(base, f"{name}-{split}", key)
        fp = cache.fingerprint(files, folder)
        hit = cache.load_entry(entry, fp)
        if hit is not None and hit[2].get("classes") == classes and np.array_equal(hit[1], labels):
            return ImageArrayDataset(hit[0], hit[1], classes, name)
    # The first image fixes the size every other image must have (or is resized to).
    shape = (len(files), *(size or _decode_one(files[0], None).shape[:2]), 3)
    if entry is None:
        images = np.empty(shape, dtype=np.uint8)
        decode_images(files, images, size is not None, workers, progress, f"decoding {name}/{split}")
        return ImageArrayDataset(images, labels, classes, name)
    out, tmp = cache.open_images_for_writing(entry, shape)
    try:
        decode_images(files, out, size is not None, workers, progress, f"decoding {name}/{split}")
        meta = {"name": name, "source": str(folder.resolve()), "classes": classes, "shape": list(shape),
                "fingerprint": fp}
        cache.commit_entry(entry, out, tmp, labels, meta)
    finally:
        del out
        cache.discard(tmp)
    hit = cache.load_entry(entry, fp)
    if hit is not None:
        return ImageArrayDataset(hit[0], hit[1], classes, name)
    # Another process (e.g. a second distributed rank) began rebuilding the same entry right
    # after our commit and removed meta.json; images.npy is still a complete file (os.replace
    # is atomic) with the same content, so map it directly.
    images = np.load(entry / "images.npy", mmap_mode="r")
    if images.shape != shape:
        raise OSError(f"cache entry {entry} was written but reads back as {images.shape}, expected {shape}")
    return ImageArrayDataset(images, labels, classes, name)

"""CIFAR-10 and CIFAR-100 from the official pickled batches or from an ImageFolder tree.

[0] Krizhevsky, 2009, "Learning Multiple Layers of Features from Tiny Images",
    https://www.cs.toronto.edu/~kriz/learning-features-2009-TR.pdf

Pickles can run arbitrary code when loaded, so the official python batches are handled in two
steps: an archive (downloaded or found in ``root``) is checked against the official md5 before
anything is extracted, and every batch file is read with an unpickler that can only rebuild
numpy arrays (any other global in the stream is refused), which also covers a folder of
batches that did not come from a verified archive.
"""

from __future__ import annotations

import codecs
import os
import pickle
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from covssl.data.archive import download_url, extract_archive, file_digest
from covssl.data.arrays import ImageArrayDataset, first_per_class
from covssl.data.cache import default_cache_dir
from covssl.data.image_folder import ProgressArg, as_image_size, check_max_per_class, load_image_folder


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant lives and how its batches are laid out."""

    archive: str  # official archive file name
    url: str  # official download URL
    md5: str  # official md5 of the archive
    folder: str  # folder the archive extracts to
    train: tuple[str, ...]  # batch files of the train split
    test: tuple[str, ...]  # batch files of the test split
    label_key: str  # key of the labels in a batch dict
    meta: str  # file holding the class names
    names_key: str  # key of the class names in the meta dict
    num_classes: int


CIFAR: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        "cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels", "batches.meta", "label_names", 10,
    ),
    "cifar100": CifarSpec(
        "cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python",
        ("train",), ("test",), "fine_labels", "meta", "fine_label_names", 100,
    ),
}


def _numpy_reconstruct() -> Any:
    core = getattr(np, "_core", None) or np.core  # numpy >= 2 moved numpy.core to numpy._core
    return core.multiarray._reconstruct


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler whose only reachable globals are those that rebuild a numpy array.

    ``_codecs.encode`` (str -> bytes, no side effects) is how protocol-2 pickles written by
    Python 3 store raw bytes, e.g. a batch re-saved with ``pickle.dump(..., protocol=2)``.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _numpy_reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise pickle.UnpicklingError(f"refusing global {module}.{name}: CIFAR batches hold only numpy arrays")


def read_batch(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one CIFAR pickle (Python 2 format) with the array-only unpickler; keys become str.

    Args:
        path: a batch or meta file.

    Returns:
        The batch dict, e.g. ``{"data": uint8 (n, 3072), "labels": [...], ...}``.

    Examples:
        >>> read_batch("cifar-10-batches-py/test_batch")["data"].shape  # doctest: +SKIP
        (10000, 3072)
    """
    with open(path, "rb") as f:
        try:
            # latin1 is what numpy needs to rebuild arrays pickled by Python 2.
            obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"cannot read CIFAR batch {path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"cannot read CIFAR batch {path}: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    out = np.empty((len(images), *size, 3), dtype=np.uint8)
    for i, img in enumerate(images):  # PIL's bicubic antialiases when shrinking
        out[i] = np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.Resampling.BICUBIC))
    return out


def load_cifar_batches(
    folder: str | os.PathLike[str], name: str = "cifar10", split: str = "train",
    image_size: int | tuple[int, int] | None = None, max_per_class: int | None = None,
) -> ImageArrayDataset:
    """Load the official python batches from their extracted folder (e.g. ``cifar-10-batches-py/``).

    Args:
        folder: the folder holding the batch files and the meta file.
        name: "cifar10" or "cifar100".
        split: "train" or "test".
        image_size: resize to this (int or (height, width)); None keeps 32x32.
        max_per_class: keep only the first k images of each class, in file order.

    Returns:
        An in-memory :class:`ImageArrayDataset` (N, 32, 32, 3) with the official class names.

    Examples:
        >>> ds = load_cifar_batches("data/cifar-10-batches-py", "cifar10", "test")  # doctest: +SKIP
        >>> len(ds), ds.num_classes  # doctest: +SKIP
        (10000, 10)
    """
    spec = CIFAR[name]
    size = as_image_size(image_size)
    check_max_per_class(max_per_class)
    folder = Path(folder)
    images, labels = [], []
    for fname in spec.train if split == "train" else spec.test:
        path = folder / fname
        if not path.is_file():
            raise FileNotFoundError(f"root: CIFAR batch file {path} does not exist")
        batch = read_batch(path)
        if "data" not in batch or spec.label_key not in batch:
            raise ValueError(f"CIFAR batch {path}: expected keys 'data' and {spec.label_key!r}, got {sorted(batch)}")
        data = np.asarray(batch["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"CIFAR batch {path}: expected uint8 data of shape (n, 3072), got {data.dtype} {data.shape}")
        # Each row holds the R, G and B planes, each 32x32 row-major.
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # (n, 3072) -> (n, 32, 32, 3)
        labels.append(np.asarray(batch[spec.label_key], dtype=np.int64))
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in read_batch(folder / spec.meta)[spec.names_key]]
    x, y = np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)
    if max_per_class is not None:
        keep = first_per_class(y, max_per_class)
        x, y = x[keep], y[keep]
    if size is not None and size != (32, 32):
        x = _resize(x, size)
    return ImageArrayDataset(x, y, classes, name)


def _extract_official(archive: Path, spec: CifarSpec, dest: Path, md5: str) -> Path:
    """Verify ``archive`` and extract its batch folder into ``dest`` atomically."""
    got = file_digest(archive, "md5")
    if got != md5.lower():
        raise ValueError(f"archive {archive}: md5 mismatch, expected {md5.lower()}, got {got}")
    tmp = dest / f".extract-{uuid.uuid4().hex}.tmp"
    try:
        extract_archive(archive, tmp)
        if not (tmp / spec.folder).is_dir():
            raise ValueError(f"archive {archive}: expected a top-level folder {spec.folder}/")
        if not (dest / spec.folder).is_dir():
            os.rename(tmp / spec.folder, dest / spec.folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / spec.folder


def load_cifar(
    name: str,
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    md5: str | None = None,
    image_size: int | tuple[int, int] | None = None,
    max_per_class: int | None = None,
    workers: int | None = None,
    progress: ProgressArg = True,
) -> ImageArrayDataset:
    """Load CIFAR-10/100 from whatever ``root`` holds, downloading only if asked.

    Looked for in ``root`` (default ``<cache_dir>/<name>``), in this order:

    1. an ImageFolder tree ``root/{train,test}/<class>/`` or ``root/<name>/{train,test}/<class>/``
       (decoded once, then memory-mapped from the cache; see :func:`load_image_folder`);
    2. the extracted official batches ``root/cifar-10-batches-py/`` (or ``root`` itself);
    3. the official archive ``root/cifar-10-python.tar.gz``: md5-verified, then extracted;
    4. with ``download=True``: the official archive fetched with urllib to
       ``<cache_dir>/downloads/``, md5-verified, extracted safely into ``root``.

    Args:
        name: "cifar10" or "cifar100".
        root: the data folder (see above).
        split: "train" or "test".
        download: allow step 4.
        cache_dir: cache root (default ``$COVSSL_CACHE`` or ``~/.cache/covssl``).
        url: override the download URL (the tests serve a local archive via ``file://``).
        md5: override the expected archive md5 (defaults to the official value).
        image_size: resize to this (int or (height, width)); None keeps 32x32.
        max_per_class: keep only the first k images of each class.
        workers: decoding processes for an ImageFolder tree (None: automatic).
        progress: progress bar / callback for decoding an ImageFolder tree.

    Returns:
        An :class:`ImageArrayDataset` with 10 or 100 classes.

    Examples:
        >>> ds = load_cifar("cifar10", "data/", split="test", download=True)  # doctest: +SKIP
        >>> len(ds), ds.image_size  # doctest: +SKIP
        (10000, (32, 32))
    """
    if name not in CIFAR:
        raise ValueError(f"name: expected one of {sorted(CIFAR)}, got {name!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    spec = CIFAR[name]
    base = Path(root) if root is not None else default_cache_dir(cache_dir) / name
    for candidate in (base, base / name):
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            ds = load_image_folder(candidate, split, name=name, image_size=image_size, max_per_class=max_per_class,
                                   cache_dir=cache_dir, workers=workers, progress=progress)
            if ds.num_classes != spec.num_classes:
                raise ValueError(f"root: {candidate}/{split} has {ds.num_classes} class folders, "
                                 f"{name} has {spec.num_classes}")
            return ds
    kwargs: dict[str, Any] = {"name": name, "split": split, "image_size": image_size, "max_per_class": max_per_class}
    for folder in (base / spec.folder, base):
        if (folder / spec.meta).is_file():
            return load_cifar_batches(folder, **kwargs)
    expected_md5 = md5 or spec.md5
    if (base / spec.archive).is_file():
        return load_cifar_batches(_extract_official(base / spec.archive, spec, base, expected_md5), **kwargs)
    if download:
        archive = default_cache_dir(cache_dir) / "downloads" / spec.archive
        if not archive.is_file():
            download_url(url or spec.url, archive, md5=expected_md5)
        base.mkdir(parents=True, exist_ok=True)
        return load_cifar_batches(_extract_official(archive, spec, base, expected_md5), **kwargs)
    raise FileNotFoundError(
        f"root: no {name} data in {base}: expected {base}/{split}/<class>/ images, {base}/{spec.folder}/, "
        f"or {base}/{spec.archive}; pass download=True to fetch {spec.url}"
    )

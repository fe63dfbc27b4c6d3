"""Datasets by name: ``load_dataset("digits" | "cifar10" | "cifar100" | "imagefolder", ...)``."""

from __future__ import annotations

from covssl.registry import Registry

import os

from covssl.data.arrays import ImageArrayDataset, first_per_class
from covssl.data.cifar import CIFAR, load_cifar
from covssl.data.digits import load_digits
from covssl.data.image_folder import ProgressArg, check_max_per_class, load_image_folder

DATASETS: Registry[str] = Registry("dataset")  # name -> what it is
for _name, _description in {
    "digits": "scikit-learn's bundled 8x8 digits as 32x32 RGB, 1500/297 split; offline, no download",
    "cifar10": "CIFAR-10 from root (ImageFolder tree, python batches or archive), or downloaded",
    "cifar100": "CIFAR-100 from root (ImageFolder tree, python batches or archive), or downloaded",
    "imagefolder": "any root/<class>/*.{jpg,jpeg,png,bmp,webp} tree (or root/{train,test}/<class>/)",
}.items():
    DATASETS.register(_name, _description)


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted.

    Examples:
        >>> list_datasets()
        ['cifar10', 'cifar100', 'digits', 'imagefolder']
    """
    return DATASETS.names()


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    image_size: int | tuple[int, int] | None = None,
    max_per_class: int | None = None,
    workers: int | None = None,
    progress: ProgressArg = True,
) -> ImageArrayDataset:
    """Load a dataset by name as an :class:`ImageArrayDataset` of uint8 (N, H, W, 3) images.

    Args:
        name: one of :func:`list_datasets`.
        root: data folder; ignored by "digits", required by "imagefolder", optional for CIFAR
            (default ``<cache_dir>/<name>``).
        split: "train" or "test".
        download: CIFAR only: fetch the official archive if ``root`` has no data.
        cache_dir: cache root for decoded images and downloads (default ``$COVSSL_CACHE`` or
            ``~/.cache/covssl``).
        image_size: resize to this int or (height, width); None keeps the native size
            (digits: 32).
        max_per_class: keep only the first k images of each class (small runs and tests).
        workers: image-decoding processes for ImageFolder trees (None: automatic).
        progress: progress bar (True), ``callback(done, total)``, or False.

    Returns:
        The dataset; ``len``, ``image_size``, ``num_classes``, ``classes`` describe it.

    Examples:
        >>> ds = load_dataset("digits", split="test")
        >>> len(ds), ds.image_size, ds.num_classes
        (297, (32, 32), 10)
    """
    if name not in DATASETS:
        raise ValueError(f"name: unknown dataset {name!r}, expected one of {list_datasets()}")
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if name == "digits":
        check_max_per_class(max_per_class)
        ds = load_digits(split, image_size)
        return ds if max_per_class is None else ds.subset(first_per_class(ds.labels, max_per_class))
    if name in CIFAR:
        return load_cifar(name, root, split, download, cache_dir, image_size=image_size,
                          max_per_class=max_per_class, workers=workers, progress=progress)
    if root is None:
        raise ValueError("root: the 'imagefolder' dataset needs root=<folder with one subfolder per class>")
    return load_image_folder(root, split, name="imagefolder", image_size=image_size, max_per_class=max_per_class,
                             cache_dir=cache_dir, workers=workers, progress=progress)

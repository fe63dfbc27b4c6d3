"""An image dataset backed by one uint8 array, fetched a whole batch at a time.

Every loader in :mod:`covssl.data` returns an :class:`ImageArrayDataset`: the decoded images as one
``(N, H, W, 3)`` uint8 array (in memory, or memory-mapped from the decoded-image cache) plus int64
labels. Keeping the images as uint8 until they reach the augmentation device costs 1 byte per
pixel instead of 4, and a batch is one numpy fancy-index instead of ``batch`` Python calls.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


class _MemmapRef(NamedTuple):
    """Where a memory-mapped uint8 image array lives, so a pickled dataset can reopen it."""

    filename: str
    offset: int
    shape: tuple[int, ...]


class ImageArrayDataset(torch.utils.data.Dataset):
    """Labelled RGB images held as one uint8 array of shape (N, H, W, 3).

    ``__getitem__`` returns one image, ``__getitems__`` a whole batch with one fancy-index.
    PyTorch's map-style fetcher calls ``dataset.__getitems__(indices)`` whenever it exists and
    the loader batches automatically (``batch_size`` set, or a ``batch_sampler``), then passes
    the result to ``collate_fn``. The default collate would split our ``(images, labels)``
    tuple apart, so pair this dataset with :func:`collate_batch` (or use :func:`make_loader`).

    Args:
        images: uint8 array of shape (N, H, W, 3); may be an ``np.memmap`` (it is not copied).
        labels: integer array of shape (N,), values in ``[0, len(classes))``.
        classes: class names; ``labels[i]`` indexes this list.
        name: a short name for logs ("digits", "cifar10", ...).

    Examples:
        >>> import numpy as np
        >>> ds = ImageArrayDataset(np.zeros((4, 8, 8, 3), np.uint8), np.array([0, 1, 0, 1]),
        ...                        ["a", "b"], "toy")
        >>> x, y = ds.__getitems__([3, 0])
        >>> tuple(x.shape), y.tolist()
        ((2, 3, 8, 8), [1, 0])
        >>> loader = make_loader(ds, batch_size=2)
        >>> [tuple(xb.shape) for xb, yb in loader]
        [(2, 3, 8, 8), (2, 3, 8, 8)]
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: Sequence[str], name: str) -> None:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
            raise ValueError(f"images: expected a numpy uint8 array of shape (N, H, W, 3), got {got}")
        if images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"images: expected shape (N, H, W, 3), got {images.shape}")
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels: expected shape ({images.shape[0]},) to match images, got {labels.shape}")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels: expected an integer array, got dtype {labels.dtype}")
        classes = [str(c) for c in classes]
        if not classes:
            raise ValueError("classes: expected at least one class name, got an empty list")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(
                f"labels: expected values in [0, {len(classes)}) for {len(classes)} classes, "
                f"got range [{labels.min()}, {labels.max()}]"
            )
        self.images = images
        # int64 is what torch's cross-entropy and kNN voting index with; a memmap stays a memmap.
        self.labels = labels if labels.dtype == np.int64 else labels.astype(np.int64)
        self.classes = classes
        self.name = str(name)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of every image."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def num_classes(self) -> int:
        """Number of class names (labels lie in ``[0, num_classes)``)."""
        return len(self.classes)

    def _indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.size == 0:
            return idx.astype(np.int64).reshape(0)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices: expected a 1-D sequence of integers, got dtype {idx.dtype} shape {idx.shape}")
        n = len(self)
        if idx.min() < -n or idx.max() >= n:
            raise ValueError(f"indices: expected values in [-{n}, {n}), got range [{idx.min()}, {idx.max()}]")
        return idx.astype(np.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Return ``(image, label)``: a uint8 tensor of shape (3, H, W) and a Python int."""
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} images")
        # np.array copies: a memmap view is read-only and torch warns on non-writable arrays.
        chw = np.array(self.images[i].transpose(2, 0, 1), order="C")  # (H, W, 3) -> (3, H, W)
        return torch.from_numpy(chw), int(self.labels[i])

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return a batch ``(images, labels)``: uint8 (b, 3, H, W) and int64 (b,), one fancy-index."""
        idx = self._indices(indices)
        batch = self.images[idx]  # (b, H, W, 3); fancy-indexing copies, also out of a memmap
        # numpy's transpose-copy of uint8 is ~10x faster than torch's permute().contiguous() here.
        x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))  # (b, 3, H, W)
        y = torch.from_numpy(np.array(self.labels[idx], dtype=np.int64))  # (b,)
        return x, y

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageArrayDataset:
        """Return a new in-memory dataset with only ``indices`` (same classes and name)."""
        idx = self._indices(indices)
        return ImageArrayDataset(np.array(self.images[idx]), np.array(self.labels[idx]), self.classes, self.name)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle a memory-mapped image array as its file name, not its contents.

        DataLoader workers started with spawn/forkserver (macOS, Windows, Python >= 3.14 on
        Linux) and spawned distributed ranks receive the dataset by pickle; without this, each
        would get a private in-memory copy of the whole array (150 MB for CIFAR-10 train).
        """
        state = self.__dict__.copy()
        imgs = self.images
        # Only a top-level map (its buffer is the mmap itself) can be reopened from file+offset;
        # a view or slice of one would reopen at the parent's offset and read the wrong bytes.
        if isinstance(imgs, np.memmap) and isinstance(imgs.base, mmap.mmap) and imgs.filename \
                and imgs.flags.c_contiguous:
            state["images"] = _MemmapRef(str(imgs.filename), int(imgs.offset), tuple(imgs.shape))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        ref = state["images"]
        if isinstance(ref, _MemmapRef):
            state["images"] = np.memmap(ref.filename, dtype=np.uint8, mode="r", offset=ref.offset, shape=ref.shape)
        self.__dict__.update(state)

    def __repr__(self) -> str:
        h, w = self.image_size
        kind = "memmap" if isinstance(self.images, np.memmap) else "in-memory"
        return f"ImageArrayDataset(name={self.name!r}, n={len(self)}, size={h}x{w}, classes={self.num_classes}, {kind})"


def first_per_class(labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the first ``k`` samples of every class, in ascending order.

    Args:
        labels: int array of shape (N,).
        k: samples kept per class (classes with fewer keep all).

    Returns:
        int64 array of sorted indices.

    Examples:
        >>> first_per_class(np.array([1, 0, 1, 1, 0]), 1).tolist()
        [0, 1]
    """
    labels = np.asarray(labels)
    keep = [np.flatnonzero(labels == c)[:k] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.zeros(0, np.int64)


def collate_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate for :meth:`ImageArrayDataset.__getitems__`: the batch is already stacked.

    A module-level function (not a lambda) so that ``DataLoader(num_workers > 0)`` can pickle it.

    Args:
        batch: ``(images, labels)`` as returned by ``__getitems__``.

    Returns:
        The same tuple, unchanged.

    Examples:
        >>> import torch
        >>> x, y = collate_batch((torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])))
        >>> tuple(x.shape)
        (2, 3, 4, 4)
    """
    if not (isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[0], torch.Tensor)):
        raise ValueError(
            "batch: expected the (images, labels) tuple of ImageArrayDataset.__getitems__, "
            f"got {type(batch).__name__}; use collate_batch only with ImageArrayDataset"
        )
    return batch


def make_loader(
    dataset: ImageArrayDataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    drop_last: bool = False,
    sampler: Sampler[int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    generator: torch.Generator | None = None,
    persistent_workers: bool = False,
) -> DataLoader:
    """A ``DataLoader`` whose every batch is one ``__getitems__`` call.

    Equivalent to ``DataLoader(dataset, batch_size=..., collate_fn=collate_batch, ...)``. Pass a
    ``DistributedSampler`` as ``sampler`` for multi-process training (then ``shuffle`` must be
    False, as in ``DataLoader``). Workers mostly help when the images are memory-mapped from a
    cold disk; an in-memory fancy-index of a CIFAR batch takes well under a millisecond.

    Args:
        dataset: the dataset to batch.
        batch_size: images per batch (> 0).
        shuffle: reshuffle every epoch (ignored with ``sampler``).
        drop_last: drop the last incomplete batch.
        sampler: optional index sampler (e.g. ``DistributedSampler``).
        num_workers: loader worker processes.
        pin_memory: pin batches for faster host-to-GPU copies.
        generator: RNG for shuffling, for reproducible epochs.
        persistent_workers: keep workers alive between epochs.

    Returns:
        A ``torch.utils.data.DataLoader`` yielding ``(uint8 (b, 3, H, W), int64 (b,))``.

    Examples:
        >>> import numpy as np
        >>> ds = ImageArrayDataset(np.zeros((5, 4, 4, 3), np.uint8), np.zeros(5, np.int64), ["a"], "toy")
        >>> [len(y) for _, y in make_loader(ds, batch_size=2)]
        [2, 2, 1]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=generator,
        persistent_workers=persistent_workers and num_workers > 0,
        collate_fn=collate_batch,
    )

"""The offline default: scikit-learn's bundled 8x8 handwritten digits, as 32x32 RGB images.

Why this is the honest default when there is no network and no local data:

- it ships inside scikit-learn (a dependency), so it loads without any download;
- the images are real handwriting scans with human labels (10 classes, 1,797 images), not
  synthetic noise, so a kNN or linear-probe accuracy on them says whether the features learned
  anything: a collapsed encoder scores ~10%, raw pixels already score well above that;
- it is tiny (5.5 MB as 32x32 RGB uint8), so an SSL run finishes on a laptop CPU in minutes.

[0] Alpaydin & Kaynak, 1998, "Optical Recognition of Handwritten Digits", UCI ML Repository,
    https://doi.org/10.24432/C50P49 (the data behind ``sklearn.datasets.load_digits``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from covssl.data.arrays import ImageArrayDataset

DIGITS_SIZE = 32  # output height = width
DIGITS_TEST = 297  # 1797 = 1500 train + 297 test
DIGITS_SEED = 0


def stratified_split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into train/test with each class's share of the test set proportional.

    Each class c with n_c members gets ``floor(n_test * n_c / N)`` test images, and the
    remaining ``n_test - sum`` go to the classes with the largest fractional parts (ties by
    class id); within a class the test images are a seeded random choice. Written with numpy
    alone so that the split cannot change with the scikit-learn version.

    Args:
        labels: int array of shape (N,).
        n_test: size of the test split, 0 < n_test < N.
        seed: seed of ``np.random.default_rng``.

    Returns:
        ``(train_idx, test_idx)``, each sorted ascending, disjoint, covering ``range(N)``.

    Examples:
        >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
        >>> tr, te = stratified_split(y, 4, seed=0)
        >>> len(tr), len(te), np.bincount(y[te]).tolist()
        (4, 4, [2, 2])
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if not 0 < n_test < n:
        raise ValueError(f"n_test: expected 0 < n_test < {n}, got {n_test}")
    classes, counts = np.unique(labels, return_counts=True)
    quota = n_test * counts / n
    take = np.floor(quota).astype(np.int64)
    remainder = quota - take
    order = np.lexsort((classes, -remainder))  # largest remainder first, then smallest class id
    take[order[: n_test - int(take.sum())]] += 1
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for c, k in zip(classes, take):
        members = np.flatnonzero(labels == c)
        test.append(rng.permutation(members)[:k])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(n), test_idx)
    return train_idx, test_idx


def digits_to_rgb(images: np.ndarray, size: int = DIGITS_SIZE) -> np.ndarray:
    """Turn (N, 8, 8) digit intensities in 0..16 into (N, size, size, 3) uint8 RGB.

    Formula: x_uint8 = round(clip(bilinear_upsample(x * 255 / 16), 0, 255)), the gray value
    copied into all three channels (ink is bright on a black background, as in MNIST).

    Args:
        images: array of shape (N, 8, 8), values in [0, 16].
        size: output height and width (>= 8).

    Returns:
        uint8 array of shape (N, size, size, 3).

    Examples:
        >>> digits_to_rgb(np.full((1, 8, 8), 16.0)).max(), digits_to_rgb(np.zeros((1, 8, 8))).shape
        (np.uint8(255), (1, 32, 32, 3))
    """
    x = torch.as_tensor(np.asarray(images, dtype=np.float64) * (255.0 / 16.0)).unsqueeze(1)  # (N, 1, 8, 8)
    # Bilinear, not nearest: nearest would give 4x4 blocks whose edges random crops would learn.
    up = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)  # (N, 1, size, size)
    gray = up.clamp(0, 255).round().to(torch.uint8).squeeze(1).numpy()  # (N, size, size)
    return np.repeat(gray[..., None], 3, axis=3)  # (N, size, size, 3)


def load_digits(split: str = "train", image_size: int | None = None) -> ImageArrayDataset:
    """scikit-learn's 8x8 digits as a 32x32 RGB dataset with a fixed 1500/297 split.

    Why 32x32: it is CIFAR's size, so one model and augmentation config (CIFAR-stem ResNet,
    random-resized-crop with scale (0.2, 1)) runs on both without change; a 20%-area crop of
    32x32 is still ~14x14 pixels, whereas at 8x8 it would be ~3x3, too few to keep a digit's
    shape. The cost stays small: 1,797 images of 32x32 are 5.5 MB, and a narrow ResNet runs
    an epoch of 1,500 images in seconds on a laptop CPU. ``image_size=16`` is there for an
    even cheaper run.

    The split is stratified and seeded (``DIGITS_SEED``), so every call, machine and
    scikit-learn version gets the same 1,500 training and 297 test images.

    Args:
        split: "train" (1,500 images) or "test" (297 images).
        image_size: output height = width (default 32, minimum 8).

    Returns:
        An in-memory :class:`ImageArrayDataset` named "digits" with classes "0".."9".

    Examples:
        >>> ds = load_digits("test")
        >>> len(ds), ds.image_size, ds.num_classes
        (297, (32, 32), 10)
    """
    from sklearn.datasets import load_digits as _sk_load_digits  # bundled with scikit-learn, no download

    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    size = DIGITS_SIZE if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"image_size: expected an int >= 8 for digits, got {image_size!r}")
    bunch = _sk_load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_split(labels, DIGITS_TEST, DIGITS_SEED)
    idx = train_idx if split == "train" else test_idx
    images = digits_to_rgb(bunch.images[idx], size)
    return ImageArrayDataset(images, labels[idx], [str(d) for d in range(10)], "digits")

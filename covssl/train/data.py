"""The three image sets a run needs: training images, the kNN bank and the test queries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covssl.config import DataConfig
from covssl.data import ImageArrayDataset, load_dataset, prepare_cifar10_copy


@dataclass
class Splits:
    """train: what the model trains on; bank: labelled kNN/probe training features; test: queries."""

    train: ImageArrayDataset
    bank: ImageArrayDataset
    test: ImageArrayDataset

    @property
    def num_classes(self) -> int:
        return self.train.num_classes


def _seeded_subset(dataset: ImageArrayDataset, size: int | None, seed: int) -> ImageArrayDataset:
    if size is None or size >= len(dataset):
        return dataset
    if size < 1:
        raise ValueError(f"data.max_*_images: expected a positive number, got {size}")
    chosen = np.random.default_rng(seed).choice(len(dataset), size=size, replace=False)
    return dataset.subset(np.sort(chosen))


def resolve_root(config: DataConfig) -> str | None:
    """The data root; a ``.tar.gz`` archive (like the CIFAR-10 JPEG copy) is extracted once to the cache."""
    if config.root is not None and str(config.root).endswith((".tar.gz", ".tgz", ".tar")):
        return str(prepare_cifar10_copy(Path(config.root), config.cache_dir))
    return config.root


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load the train and test splits of the configured dataset (seeded subsets when asked)."""
    root = resolve_root(config)
    common = {"root": root, "download": config.download, "cache_dir": config.cache_dir}
    train = load_dataset(config.dataset, split="train", **common)
    try:
        test = load_dataset(config.dataset, split="test", **common)
    except FileNotFoundError:
        if config.dataset != "imagefolder" or (Path(str(root)) / "train").is_dir():
            raise  # a train/ folder without test/ is a broken tree, not a flat one
        # a flat root/<class>/ tree has no test split: hold out a seeded 10% for evaluation
        order = np.random.default_rng(seed).permutation(len(train))
        cut = max(1, len(train) // 10)
        train, test = train.subset(np.sort(order[cut:])), train.subset(np.sort(order[:cut]))
    train = _seeded_subset(train, config.max_train_images, seed)
    test = _seeded_subset(test, config.max_eval_images, seed + 1)
    return Splits(train=train, bank=train, test=test)

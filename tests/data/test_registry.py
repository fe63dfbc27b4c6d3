"""load_dataset / list_datasets: names, splits, dispatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from covssl.data import list_datasets, load_dataset

from ._builders import make_tree


def test_lists_every_name() -> None:
    assert list_datasets() == ["cifar10", "cifar100", "digits", "imagefolder"]


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'mnist'.*\['cifar10', 'cifar100', 'digits', 'imagefolder'\]"):
        load_dataset("mnist")


@pytest.mark.parametrize("name", ["digits", "cifar10", "imagefolder"])
def test_split_is_checked_first(name: str) -> None:
    with pytest.raises(ValueError, match="split: expected 'train' or 'test', got 'val'"):
        load_dataset(name, split="val")


def test_digits_is_the_offline_default_and_can_be_subset() -> None:
    ds = load_dataset("digits")
    assert len(ds) == 1500 and ds.image_size == (32, 32) and ds.name == "digits"
    small = load_dataset("digits", split="test", max_per_class=3, image_size=16)
    assert len(small) == 30 and small.image_size == (16, 16)
    assert np.bincount(small.labels).tolist() == [3] * 10
    full = load_dataset("digits", split="test", image_size=16)
    first = [int(np.flatnonzero(full.labels == c)[k]) for c in range(10) for k in range(3)]
    np.testing.assert_array_equal(small.images, full.images[sorted(first)])
    with pytest.raises(ValueError, match="max_per_class"):
        load_dataset("digits", max_per_class=-1)


def test_imagefolder_needs_a_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root"):
        load_dataset("imagefolder")
    make_tree(tmp_path / "r" / "train", {"x": 2, "y": 1})
    make_tree(tmp_path / "r" / "test", {"x": 1, "y": 1})
    ds = load_dataset("imagefolder", tmp_path / "r", "test", cache_dir=tmp_path / "c", progress=False)
    assert len(ds) == 2 and ds.classes == ["x", "y"] and ds.name == "imagefolder"

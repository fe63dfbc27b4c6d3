"""ImageArrayDataset, collate_batch, make_loader, first_per_class."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.data.arrays import ImageArrayDataset, collate_batch, first_per_class, make_loader


def _toy(n: int = 7, h: int = 4, w: int = 5, seed: int = 0) -> ImageArrayDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    labels = np.arange(n) % 3
    return ImageArrayDataset(images, labels, ["a", "b", "c"], "toy")


def test_getitem_is_chw_uint8_of_the_stored_image() -> None:
    ds = _toy()
    x, y = ds[2]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 4, 5) and x.is_contiguous()
    assert isinstance(y, int) and y == 2
    for c in range(3):  # channel c of the tensor is plane c of the HWC array
        np.testing.assert_array_equal(x[c].numpy(), ds.images[2, :, :, c])
    np.testing.assert_array_equal(ds[-1][0].numpy(), ds[6][0].numpy())
    with pytest.raises(IndexError):
        ds[7]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-7, 6), min_size=1, max_size=12))
def test_getitems_equals_stacking_getitem(indices: list[int]) -> None:
    ds = _toy()
    x, y = ds.__getitems__(indices)
    assert x.dtype == torch.uint8 and y.dtype == torch.int64 and x.is_contiguous()
    assert torch.equal(x, torch.stack([ds[i][0] for i in indices]))
    assert y.tolist() == [ds[i][1] for i in indices]


def test_getitems_rejects_bad_indices() -> None:
    ds = _toy()
    with pytest.raises(ValueError, match="indices"):
        ds.__getitems__([0, 7])
    with pytest.raises(ValueError, match="indices"):
        ds.__getitems__([0.5])  # type: ignore[list-item]
    x, y = ds.__getitems__([])
    assert tuple(x.shape) == (0, 3, 4, 5) and tuple(y.shape) == (0,)


def test_memmap_images_are_read_without_copy_or_warning(tmp_path: Path) -> None:
    ds = _toy()
    np.save(tmp_path / "x.npy", ds.images)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    mds = ImageArrayDataset(mm, ds.labels, ds.classes, "mm")
    assert mds.images is mm and "memmap" in repr(mds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on non-writable numpy arrays
        x, _ = mds.__getitems__([1, 3])
        x1, _ = mds[1]
    assert torch.equal(x[0], x1) and torch.equal(x, ds.__getitems__([1, 3])[0])


def test_properties_and_subset() -> None:
    ds = _toy()
    assert ds.image_size == (4, 5) and ds.num_classes == 3 and len(ds) == 7 and ds.labels.dtype == np.int64
    sub = ds.subset([5, 0, 5])
    assert len(sub) == 3 and sub.classes == ds.classes and sub.name == "toy"
    np.testing.assert_array_equal(sub.images, ds.images[[5, 0, 5]])
    np.testing.assert_array_equal(sub.labels, [2, 0, 2])
    sub.images[0] = 0  # an independent copy: the parent is untouched
    assert ds.images[5].any()
    with pytest.raises(ValueError, match="indices"):
        ds.subset([99])


@pytest.mark.parametrize(
    ("images", "labels", "classes", "match"),
    [
        (np.zeros((2, 4, 4, 3), np.float32), [0, 0], ["a"], "uint8"),
        (np.zeros((2, 4, 4), np.uint8), [0, 0], ["a"], r"\(N, H, W, 3\)"),
        (np.zeros((2, 4, 4, 1), np.uint8), [0, 0], ["a"], r"\(N, H, W, 3\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), [0], ["a"], "labels"),
        (np.zeros((2, 4, 4, 3), np.uint8), [0, 1], ["a"], r"\[0, 1\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), [0, -1], ["a", "b"], "labels"),
        (np.zeros((2, 4, 4, 3), np.uint8), [0.0, 1.0], ["a", "b"], "integer"),
        (np.zeros((2, 4, 4, 3), np.uint8), [0, 0], [], "classes"),
        ([[0]], [0], ["a"], "images"),
    ],
)
def test_constructor_rejects_bad_inputs(images: object, labels: object, classes: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ImageArrayDataset(images, labels, classes, "bad")  # type: ignore[arg-type]


def test_loader_fetches_each_batch_with_one_getitems_call(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _toy(n=10)
    calls = {"getitem": 0, "getitems": 0}
    real_getitems = ImageArrayDataset.__getitems__

    def counting_getitem(self: ImageArrayDataset, i: int) -> None:
        calls["getitem"] += 1
        raise AssertionError("the loader must not fetch image by image")

    def counting_getitems(self: ImageArrayDataset, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        calls["getitems"] += 1
        return real_getitems(self, idx)

    monkeypatch.setattr(ImageArrayDataset, "__getitem__", counting_getitem)
    monkeypatch.setattr(ImageArrayDataset, "__getitems__", counting_getitems)
    gen = torch.Generator().manual_seed(0)
    batches = list(make_loader(ds, batch_size=4, shuffle=True, generator=gen))
    assert calls == {"getitem": 0, "getitems": 3}
    assert [len(y) for _, y in batches] == [4, 4, 2]
    seen = torch.cat([x for x, _ in batches])
    # Every image exactly once, each with its own label.
    order = [int(np.flatnonzero((ds.images == x.permute(1, 2, 0).numpy()).all(axis=(1, 2, 3)))[0]) for x in seen]
    assert sorted(order) == list(range(10))
    assert torch.cat([y for _, y in batches]).tolist() == [int(ds.labels[i]) for i in order]


def test_loader_with_worker_processes_and_drop_last() -> None:
    ds = _toy(n=9)
    plain = [(x, y) for x, y in make_loader(ds, batch_size=4, drop_last=True)]
    workers = [(x, y) for x, y in make_loader(ds, batch_size=4, drop_last=True, num_workers=1)]
    assert len(plain) == len(workers) == 2
    for (x0, y0), (x1, y1) in zip(plain, workers):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert torch.equal(plain[1][0], ds.__getitems__([4, 5, 6, 7])[0])


def test_make_loader_and_collate_reject_misuse() -> None:
    ds = _toy()
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            make_loader(ds, batch_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch"):
        collate_batch([ds[0], ds[1]])  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=30), st.integers(1, 5))
def test_first_per_class_keeps_the_first_k_of_each_class(labels: list[int], k: int) -> None:
    got = first_per_class(np.array(labels, dtype=np.int64), k).tolist()
    expected, seen = [], {}
    for i, c in enumerate(labels):  # reference: one pass, counting per class
        if seen.get(c, 0) < k:
            expected.append(i)
            seen[c] = seen.get(c, 0) + 1
    assert got == expected


def test_pickling_reopens_memmaps_instead_of_copying_them(tmp_path: Path) -> None:
    ds = _toy(n=50, h=16, w=16)
    np.save(tmp_path / "x.npy", ds.images)
    mds = ImageArrayDataset(np.load(tmp_path / "x.npy", mmap_mode="r"), ds.labels, ds.classes, "mm")
    blob = pickle.dumps(mds)
    assert len(blob) < ds.images.nbytes // 4  # a file reference, not 38 kB of pixels
    back = pickle.loads(blob)
    assert isinstance(back.images, np.memmap) and not back.images.flags.writeable
    np.testing.assert_array_equal(back.images, ds.images)
    assert back.classes == ds.classes and back.name == "mm" and back.labels.tolist() == ds.labels.tolist()
    # A view of a map (offset into the file) is pickled by value, which stays correct.
    view = ImageArrayDataset(mds.images[10:20], ds.labels[10:20], ds.classes, "view")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(view)).images, ds.images[10:20])
    plain = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(plain.images, ds.images)

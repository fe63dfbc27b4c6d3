"""The offline default dataset: scikit-learn's 8x8 digits as 32x32 RGB."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits as sk_load_digits

from covssl.data.digits import digits_to_rgb, load_digits, stratified_split


def _bilinear_reference(img: np.ndarray, size: int) -> np.ndarray:
    """float64 bilinear resize with half-pixel centers: src = (dst + 0.5) * in / out - 0.5, edge-clamped."""
    n = img.shape[0]
    src = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = src - i0
    rows = img[i0, :] * (1 - w)[:, None] + img[i1, :] * w[:, None]  # (size, n)
    return rows[:, i0] * (1 - w)[None, :] + rows[:, i1] * w[None, :]  # (size, size)


def test_splits_have_the_documented_shapes_and_types() -> None:
    train, test = load_digits("train"), load_digits("test")
    assert train.images.shape == (1500, 32, 32, 3) and test.images.shape == (297, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.classes == [str(d) for d in range(10)] and train.name == "digits" and train.num_classes == 10
    assert train.image_size == (32, 32)
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    # Gray images: the three channels are identical.
    assert (train.images[..., 0] == train.images[..., 1]).all() and (train.images[..., 0] == train.images[..., 2]).all()


def test_loads_are_deterministic() -> None:
    a, b = load_digits("test"), load_digits("test")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_images_are_the_upsampled_sklearn_digits_with_their_labels() -> None:
    bunch = sk_load_digits()
    _, test_idx = stratified_split(bunch.target, 297, seed=0)
    ds = load_digits("test")
    np.testing.assert_array_equal(ds.labels, bunch.target[test_idx])
    for k in (0, 100, 296):
        ref = np.round(np.clip(_bilinear_reference(bunch.images[test_idx[k]] * 255.0 / 16.0, 32), 0, 255))
        assert np.abs(ds.images[k, :, :, 0].astype(float) - ref).max() <= 1  # float32 vs float64 rounding


def test_split_is_stratified_disjoint_and_complete() -> None:
    y = sk_load_digits().target
    train_idx, test_idx = stratified_split(y, 297, seed=0)
    assert len(train_idx) == 1500 and len(test_idx) == 297
    assert np.intersect1d(train_idx, test_idx).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(len(y)))
    quota = 297 * np.bincount(y) / len(y)
    counts = np.bincount(y[test_idx], minlength=10)
    assert (np.abs(counts - quota) < 1).all()


def test_raw_pixel_nearest_neighbour_recognizes_test_digits() -> None:
    """Labels travel with their images: 1-NN on raw pixels is far above chance (10%)."""
    train, test = load_digits("train", image_size=8), load_digits("test", image_size=8)
    a = train.images[..., 0].reshape(len(train), -1).astype(np.float64)  # (1500, 64)
    b = test.images[..., 0].reshape(len(test), -1).astype(np.float64)  # (297, 64)
    d2 = (b**2).sum(1)[:, None] - 2 * b @ a.T + (a**2).sum(1)[None, :]  # (297, 1500)
    acc = float((train.labels[d2.argmin(1)] == test.labels).mean())
    assert acc > 0.9


def test_digits_to_rgb_endpoints_and_sizes() -> None:
    assert digits_to_rgb(np.full((2, 8, 8), 16.0)).min() == 255
    assert digits_to_rgb(np.zeros((2, 8, 8))).max() == 0
    assert digits_to_rgb(np.zeros((1, 8, 8)), size=16).shape == (1, 16, 16, 3)
    x = np.random.default_rng(0).integers(0, 17, (3, 8, 8)).astype(float)
    np.testing.assert_array_equal(digits_to_rgb(x, size=8)[..., 0], np.round(x * 255 / 16))  # identity size


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=4, max_size=60), st.data())
def test_stratified_split_properties(labels: list[int], data: st.DataObject) -> None:
    y = np.array(labels)
    n_test = data.draw(st.integers(1, len(y) - 1))
    seed = data.draw(st.integers(0, 10))
    tr, te = stratified_split(y, n_test, seed)
    assert len(te) == n_test and len(tr) + len(te) == len(y)
    assert np.intersect1d(tr, te).size == 0 and np.all(np.diff(te) > 0) and np.all(np.diff(tr) > 0)
    classes = np.unique(y)
    quota = n_test * np.array([(y == c).sum() for c in classes]) / len(y)
    counts = np.array([(y[te] == c).sum() for c in classes])
    assert (np.abs(counts - quota) < 1).all()  # floor or ceil of each class's share
    tr2, te2 = stratified_split(y, n_test, seed)
    np.testing.assert_array_equal(te, te2)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"split": "val"}, "split"), ({"image_size": 4}, "image_size"), ({"image_size": 16.0}, "image_size"),
])
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_digits(**kwargs)


def test_stratified_split_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_test"):
        stratified_split(np.array([0, 1]), 2, 0)

"""Tests of covssl/augment/sampling.py: crop boxes and view parameters follow their distributions."""

from __future__ import annotations

import doctest
import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.augment import ViewConfig, sample_crop_boxes, sample_view_params
from covssl.augment import sampling


def test_doctests() -> None:
    assert doctest.testmod(sampling, raise_on_error=False).failed == 0


@settings(max_examples=25, deadline=None)
@given(
    lo=st.floats(0.05, 1.0),
    width=st.floats(0.0, 1.0),
    r_lo=st.floats(0.3, 1.0),
    r_hi=st.floats(1.0, 3.0),
    seed=st.integers(0, 1000),
)
def test_crop_boxes_respect_scale_and_ratio(lo: float, width: float, r_lo: float, r_hi: float, seed: int) -> None:
    hi = lo + (1 - lo) * width
    size = 1000  # integer rounding is then below 0.2% of a side
    boxes = sample_crop_boxes(500, size, size, (lo, hi), (r_lo, r_hi), torch.Generator().manual_seed(seed))
    top, left, h, w = boxes.double().unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= size).all() and (left + w <= size).all()
    assert torch.equal(boxes, boxes.round())
    # Boxes found within the 10 tries respect both ranges; the fallback is the full image (ratio 1 is inside).
    fallback = (h == size) & (w == size)
    area = (h * w / size**2)[~fallback]
    ratio = (w / h)[~fallback]
    assert (area >= lo * 0.99).all() and (area <= hi * 1.01).all()
    assert (ratio >= r_lo * 0.99).all() and (ratio <= r_hi * 1.01).all()


def test_crop_positions_cover_every_offset_uniformly() -> None:
    boxes = sample_crop_boxes(8000, 32, 32, (0.25, 0.25), (1.0, 1.0), torch.Generator().manual_seed(0))
    assert (boxes[:, 2:] == 16).all()
    counts = np.bincount(boxes[:, 0].long().numpy(), minlength=17)
    assert len(counts) == 17 and counts.min() > 0
    expected = 8000 / 17
    assert np.abs(counts - expected).max() <= 4 * math.sqrt(expected)


def test_sample_view_params_are_on_cpu_and_shaped() -> None:
    params = sample_view_params(5, 32, 32, ViewConfig())
    assert all(t.device.type == "cpu" for t in vars(params).values())
    assert params.boxes.shape == (5, 4) and params.factors.shape == (5, 4)
    assert sorted(params.order.tolist()) == [0, 1, 2, 3]
    lo, hi = params.factors[:, 0].min(), params.factors[:, 0].max()
    assert 0.6 <= lo and hi <= 1.4 and params.factors[:, 3].abs().max() <= 0.1


def test_parameters_use_the_given_generator_and_the_global_one_alike() -> None:
    torch.manual_seed(5)
    a = sample_view_params(6, 20, 30, ViewConfig(blur_prob=0.5))
    b = sample_view_params(6, 20, 30, ViewConfig(blur_prob=0.5), torch.Generator().manual_seed(5))
    for name, value in vars(a).items():
        assert torch.equal(value, getattr(b, name)), name


def test_non_square_fallback_clamps_the_aspect() -> None:
    # Areas above the image's cannot fit: every box is the central fallback, aspect clamped to 2.
    boxes = sample_crop_boxes(4, 10, 40, (1.0, 1.0), (1.5, 2.0), torch.Generator().manual_seed(0))
    assert boxes.tolist() == [[0.0, 10.0, 10.0, 20.0]] * 4

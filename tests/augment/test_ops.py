"""Tests of covssl/augment/ops.py against independent float64 references (numpy, colorsys)."""

from __future__ import annotations

import colorsys
import doctest
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.augment import ops

LUMA = np.array([0.299, 0.587, 0.114])


def _images(batch: int, size: int, seed: int, levels: int = 0) -> torch.Tensor:
    """Random float32 images in [0, 1]; with levels > 0, quantized so that channel ties and gray pixels occur."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=gen)
    return torch.round(x * levels) / levels if levels else x


def _gray_ref(x: np.ndarray) -> np.ndarray:
    return np.einsum("bchw,c->bhw", x, LUMA)[:, None]


def test_doctests() -> None:
    assert doctest.testmod(ops, raise_on_error=False).failed == 0


def test_rgb_to_gray_matches_luma() -> None:
    x = _images(3, 5, 0)
    got = ops.rgb_to_gray(x)
    assert got.shape == (3, 1, 5, 5)
    np.testing.assert_allclose(got.double().numpy(), _gray_ref(x.double().numpy()), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), low=st.floats(0.0, 1.0), high=st.floats(1.0, 2.0))
def test_brightness_contrast_saturation_match_formulas(seed: int, low: float, high: float) -> None:
    x = _images(4, 6, seed)
    factor = torch.tensor([low, high, 1.0, 0.0])
    xd, f = x.double().numpy(), factor.double().numpy()[:, None, None, None]
    bright = np.clip(f * xd, 0, 1)
    mean = _gray_ref(xd).mean(axis=(1, 2, 3), keepdims=True)  # one mean per image, over all pixels
    contrast = np.clip(f * xd + (1 - f) * mean, 0, 1)
    saturation = np.clip(f * xd + (1 - f) * _gray_ref(xd), 0, 1)
    np.testing.assert_allclose(ops.adjust_brightness(x, factor).numpy(), bright, atol=1e-6)
    np.testing.assert_allclose(ops.adjust_contrast(x, factor).numpy(), contrast, atol=1e-6)
    np.testing.assert_allclose(ops.adjust_saturation(x, factor).numpy(), saturation, atol=1e-6)


def _hue_ref(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per-pixel HSV round trip with the standard library's colorsys, in float64."""
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                h, s, v = colorsys.rgb_to_hsv(*x[b, :, i, j])
                out[b, :, i, j] = colorsys.hsv_to_rgb((h + shift[b]) % 1.0, s, v)
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shifts=st.lists(st.floats(-0.5, 0.5), min_size=3, max_size=3))
def test_adjust_hue_matches_colorsys(seed: int, shifts: list[float]) -> None:
    # Quantized images: many pixels with two equal channels or gray, the branchy cases.
    x = _images(3, 4, seed, levels=4 if seed % 2 else 0)
    shift = torch.tensor(shifts)
    got = ops.adjust_hue(x, shift).double().numpy()
    np.testing.assert_allclose(got, _hue_ref(x.double().numpy(), shift.double().numpy()), atol=2e-6)


def test_adjust_hue_keeps_value_and_chroma_and_full_turn_is_identity() -> None:
    x = _images(4, 8, 1)
    y = ops.adjust_hue(x, torch.tensor([0.1, -0.3, 0.5, 0.25]))
    torch.testing.assert_close(y.amax(1), x.amax(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(y.amin(1), x.amin(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(ops.adjust_hue(x, torch.zeros(4)), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(ops.adjust_hue(x, torch.full((4,), 0.5)), ops.adjust_hue(x, torch.full((4,), -0.5)))


def _crop_ref(x: np.ndarray, box: tuple[float, float, float, float], size: int, flip: bool) -> np.ndarray:
    """Bilinear resize of the box, half-pixel centres, edge pixels repeated, written as loops."""
    top, left, h, w = box
    channels, height, width = x.shape
    out = np.empty((channels, size, size))
    for u in range(size):
        for v in range(size):
            sy = min(max(top + (u + 0.5) * h / size - 0.5, 0.0), height - 1)
            sx = min(max(left + (v + 0.5) * w / size - 0.5, 0.0), width - 1)
            y0, x0 = int(math.floor(sy)), int(math.floor(sx))
            y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
            dy, dx = sy - y0, sx - x0
            out[:, u, v] = (
                (1 - dy) * (1 - dx) * x[:, y0, x0]
                + (1 - dy) * dx * x[:, y0, x1]
                + dy * (1 - dx) * x[:, y1, x0]
                + dy * dx * x[:, y1, x1]
            )
    return out[:, :, ::-1] if flip else out


@pytest.mark.parametrize("size", [4, 7, 12])
def test_resized_crop_matches_bilinear_reference(size: int) -> None:
    x = _images(4, 10, 2)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [2.0, 3.0, 5.0, 4.0], [7.0, 1.0, 3.0, 9.0], [4.0, 4.0, 1.0, 1.0]])
    flip = torch.tensor([False, True, False, True])
    got = ops.resized_crop(x, boxes, size, flip)
    assert got.shape == (4, 3, size, size)
    for b in range(4):
        ref = _crop_ref(x[b].double().numpy(), tuple(boxes[b].tolist()), size, bool(flip[b]))
        np.testing.assert_allclose(got[b].numpy(), ref, atol=1e-5)


def test_resized_crop_full_box_is_identity_and_flip_mirrors() -> None:
    x = _images(2, 9, 3)
    full = torch.tensor([[0.0, 0.0, 9.0, 9.0]] * 2)
    torch.testing.assert_close(ops.resized_crop(x, full, 9), x, atol=1e-6, rtol=0)
    mirrored = ops.resized_crop(x, full, 9, torch.tensor([True, True]))
    torch.testing.assert_close(mirrored, x.flip(-1), atol=1e-6, rtol=0)


def _blur_ref(x: np.ndarray, sigma: float, k: int) -> np.ndarray:
    t = np.arange(k) - (k - 1) / 2
    w = np.exp(-(t**2) / (2 * sigma**2))
    w /= w.sum()
    kernel = np.outer(w, w)  # the 2-D Gaussian is the product of the two 1-D ones
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    out = np.zeros_like(x)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i, j] = (padded[:, i : i + k, j : j + k] * kernel).sum(axis=(1, 2))
    return out


@pytest.mark.parametrize(("k", "height", "width"), [(3, 8, 8), (5, 8, 8), (7, 6, 9), (3, 2, 5)])
def test_gaussian_blur_matches_2d_convolution(k: int, height: int, width: int) -> None:
    x = _images(3, max(height, width), 4)[:, :, :height, :width]
    sigma = torch.tensor([0.1, 0.8, 2.0])
    got = ops.gaussian_blur(x, sigma, k)
    for b in range(3):
        np.testing.assert_allclose(got[b].numpy(), _blur_ref(x[b].double().numpy(), float(sigma[b]), k), atol=1e-6)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_solarize_inverts_pixels_above_threshold(threshold: float) -> None:
    x = torch.cat([_images(2, 5, 5).flatten(), torch.tensor([0.0, threshold, 1.0, 127 / 255, 128 / 255])])
    xd = x.double().numpy()
    ref = np.where(xd >= threshold, 1 - xd, xd)
    np.testing.assert_allclose(ops.solarize(x, threshold).numpy(), ref, atol=1e-7)


def test_solarize_on_uint8_grid_matches_pil_threshold_128() -> None:
    levels = torch.arange(256, dtype=torch.float32) / 255
    inverted = ops.solarize(levels) != levels
    # PIL's ImageOps.solarize(img, 128) inverts exactly the levels >= 128 (127.5 / 255 stays).
    assert inverted[128:].all() and not inverted[:128].any()


@pytest.mark.parametrize(("size", "kernel"), [(1, 1), (2, 3), (8, 3), (32, 3), (64, 7), (96, 9), (224, 23)])
def test_blur_kernel_size_is_odd_tenth(size: int, kernel: int) -> None:
    assert ops.blur_kernel_size(size) == kernel

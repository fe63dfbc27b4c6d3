"""Images that are not 8-bit RGB: converted to what they show, never silently garbled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covssl.data import load_dataset


def _load_single(tmp_path: Path, image: Image.Image) -> np.ndarray:
    """Save one image as root/a/x.png, load the tree, return the image as (H, W, 3) uint8."""
    (tmp_path / "root" / "a").mkdir(parents=True)
    image.save(tmp_path / "root" / "a" / "x.png")
    dataset = load_dataset("imagefolder", tmp_path / "root", split="train", cache_dir=tmp_path / "cache", progress=False)
    images, _ = dataset.__getitems__([0])  # (1, 3, H, W)
    return images[0].permute(1, 2, 0).numpy()


def test_grayscale_is_replicated_into_three_channels(tmp_path: Path) -> None:
    gray = np.random.default_rng(0).integers(0, 256, (6, 5), dtype=np.uint8)
    out = _load_single(tmp_path, Image.fromarray(gray, mode="L"))
    assert out.shape == (6, 5, 3) and out.dtype == np.uint8
    assert all(np.array_equal(out[..., c], gray) for c in range(3))


def test_palette_images_show_their_palette_colours(tmp_path: Path) -> None:
    indices = np.random.default_rng(1).integers(0, 4, (6, 5), dtype=np.uint8)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(colours.ravel().tolist() + [0] * (768 - colours.size))
    assert np.array_equal(_load_single(tmp_path, image), colours[indices])


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    wide = (np.arange(30, dtype=np.uint16).reshape(6, 5) * 2000)  # 0 .. 58000 of 65535
    out = _load_single(tmp_path, Image.fromarray(wide))  # mode I;16
    expected = np.round(wide / 257.0).astype(np.uint8)  # 65535 -> 255, the same brightness in 8 bits
    assert np.abs(out[..., 0].astype(int) - expected.astype(int)).max() <= 1

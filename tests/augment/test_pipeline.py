"""Tests of covssl/augment/pipeline.py: shapes, ranges, reproducibility, probabilities, crops, errors."""

from __future__ import annotations

import doctest
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from covssl.augment import AugmentConfig, EvalTransform, TwoViewAugment, ViewConfig, augment_preset
from covssl.augment import pipeline

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# An identity crop and nothing else: each probability test switches on one operation.
PLAIN = ViewConfig(
    crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0
)


def _uint8(batch: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, size, size), generator=gen, dtype=torch.uint8)


def _config(view: ViewConfig, size: int = 8) -> AugmentConfig:
    return AugmentConfig(image_size=size, view1=view, view2=replace(view))


def test_doctests() -> None:
    assert doctest.testmod(pipeline, raise_on_error=False).failed == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("method", "dataset", "size"), [("byol", "cifar10", 32), ("simclr", "imagefolder", 24)])
def test_shapes_dtype_device_and_ranges(device: str, method: str, dataset: str, size: int) -> None:
    aug = TwoViewAugment(augment_preset(method, size, dataset)).to(device)
    images = _uint8(6, 40).to(device)
    torch.manual_seed(0)
    raw = aug(images, normalize=False)
    torch.manual_seed(0)
    views = aug(images)
    mean = torch.tensor(aug.config.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(aug.config.std, device=device).view(1, 3, 1, 1)
    for r, v in zip(raw, views):
        assert v.shape == (6, 3, size, size) and v.dtype == torch.float32 and v.device.type == device
        assert r.min() >= 0 and r.max() <= 1  # unnormalized views stay in [0, 1]
        torch.testing.assert_close(v, (r - mean) / std)
    assert not torch.equal(raw[0], raw[1])  # two independent views


def test_float_input_equals_uint8_input_and_is_not_modified() -> None:
    aug = TwoViewAugment(augment_preset("byol", 16, "imagefolder"))  # blur and solarize on
    images = _uint8(8)
    floats = images.float() / 255
    kept = floats.clone()
    torch.manual_seed(3)
    a = aug(images)
    torch.manual_seed(3)
    b = aug(floats)
    torch.testing.assert_close(a, b)
    assert torch.equal(floats, kept)


def test_same_seed_same_views_other_seed_other_views() -> None:
    aug = TwoViewAugment(augment_preset("simclr"))
    images = _uint8(16)
    torch.manual_seed(7)
    first = aug(images)
    state = torch.get_rng_state()  # what a checkpoint stores
    after = aug(images)
    torch.manual_seed(7)
    again = aug(images)
    torch.set_rng_state(state)  # what an exact resume restores
    resumed = aug(images)
    torch.manual_seed(8)
    other = aug(images)
    for x, y in zip(first, again):
        assert torch.equal(x, y)
    for x, y in zip(after, resumed):
        assert torch.equal(x, y)
    assert not torch.equal(first[0], other[0]) and not torch.equal(first[0], after[0])
    # An explicit generator draws the same stream as the global one after the same seed.
    explicit = aug(images, generator=torch.Generator().manual_seed(7))
    assert torch.equal(explicit[0], first[0]) and torch.equal(explicit[1], first[1])


def _count(view: ViewConfig, images: torch.Tensor, detect) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    aug = TwoViewAugment(_config(view, images.shape[-1]))
    torch.manual_seed(0)
    v1, v2 = aug(images, normalize=False)
    return int(detect(v1, images.float() / 255).sum()), int(detect(v2, images.float() / 255).sum())


def _structured(n: int, size: int = 8) -> torch.Tensor:
    """Colourful images, dark on the left and bright on the right, every pixel >= 128."""
    ramp = torch.linspace(0.55, 1.0, size)
    red = ramp.expand(size, size)
    green = torch.full((size, size), 0.6)
    blue = ramp.flip(0).expand(size, size)
    img = torch.stack([red, green, blue])
    return (img * 255).round().to(torch.uint8).expand(n, 3, size, size).contiguous()


DETECTORS = {
    "hflip_prob": lambda v, x: v[:, 0, :, 0].mean(1) > v[:, 0, :, -1].mean(1),
    "grayscale_prob": lambda v, x: (v[:, 0] == v[:, 1]).all(-1).all(-1),
    "solarize_prob": lambda v, x: v.mean((1, 2, 3)) < 0.5,
    "jitter_prob": lambda v, x: (v - x).abs().amax((1, 2, 3)) > 1e-4,
    "blur_prob": lambda v, x: (v - x).abs().amax((1, 2, 3)) > 1e-4,
}
PRESET_P = {"hflip_prob": 0.5, "grayscale_prob": 0.2, "solarize_prob": 0.2, "jitter_prob": 0.8, "blur_prob": 0.1}


@pytest.mark.parametrize("field", sorted(DETECTORS))
@pytest.mark.parametrize("which_p", ["zero", "preset", "one"])
def test_each_op_fires_with_its_probability(field: str, which_p: str) -> None:
    n = 2000
    p = {"zero": 0.0, "preset": PRESET_P[field], "one": 1.0}[which_p]
    images = _structured(n)
    if field == "blur_prob":  # a checkerboard, which any blur changes
        board = ((torch.arange(8)[:, None] + torch.arange(8)) % 2 * 255).to(torch.uint8)
        images = board.expand(n, 3, 8, 8).contiguous()
    # sigma >= 1 px: a 0.1 px blur changes a pixel by ~1e-22, which no detector sees.
    view = replace(PLAIN, blur_sigma=(1.0, 2.0), **{field: p})
    k1, k2 = _count(view, images, DETECTORS[field])
    tolerance = 4 * math.sqrt(n * p * (1 - p))  # 4 binomial sigmas
    for k in (k1, k2):
        assert abs(k - n * p) <= tolerance, (field, p, k)


def test_views_draw_independent_parameters() -> None:
    n = 2000
    aug = TwoViewAugment(_config(replace(PLAIN, hflip_prob=0.5)))
    torch.manual_seed(1)
    v1, v2 = aug(_structured(n), normalize=False)
    both = int((DETECTORS["hflip_prob"](v1, None) & DETECTORS["hflip_prob"](v2, None)).sum())
    assert abs(both - n / 4) <= 4 * math.sqrt(n * 0.25 * 0.75)


def test_each_view_follows_its_own_recipe() -> None:
    n = 200
    cfg = AugmentConfig(image_size=8, view1=replace(PLAIN, solarize_prob=0.0), view2=replace(PLAIN, solarize_prob=1.0))
    v1, v2 = TwoViewAugment(cfg)(_structured(n), normalize=False)
    assert int(DETECTORS["solarize_prob"](v1, None).sum()) == 0
    assert int(DETECTORS["solarize_prob"](v2, None).sum()) == n


@pytest.mark.parametrize("size", [1, 2, 3])
def test_tiny_outputs_with_every_op_on(size: int) -> None:
    view = ViewConfig(jitter_prob=1.0, grayscale_prob=0.5, blur_prob=1.0, solarize_prob=0.5)
    v1, v2 = TwoViewAugment(_config(view, size))(_uint8(4, 5), normalize=False)
    assert v1.shape == v2.shape == (4, 3, size, size)
    assert bool(torch.isfinite(v1).all()) and v1.min() >= 0 and v1.max() <= 1


def test_identity_crop_returns_the_image() -> None:
    images = _uint8(5, 12)
    aug = TwoViewAugment(_config(PLAIN, 12))
    for view in aug(images, normalize=False):
        torch.testing.assert_close(view, images.float() / 255, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("view", "field"),
    [
        (ViewConfig(hflip_prob=1.5), "view1.hflip_prob"),
        (ViewConfig(jitter_prob=-0.1), "view1.jitter_prob"),
        (ViewConfig(solarize_prob=float("nan")), "view1.solarize_prob"),
        (ViewConfig(crop_scale=(0.9, 0.5)), "view1.crop_scale"),
        (ViewConfig(crop_scale=(0.0, 1.0)), "view1.crop_scale"),
        (ViewConfig(crop_scale=(0.5, 1.5)), "view1.crop_scale"),
        (ViewConfig(crop_ratio=(2.0, 1.0)), "view1.crop_ratio"),
        (ViewConfig(brightness=-1.0), "view1.brightness"),
        (ViewConfig(hue=0.7), "view1.hue"),
        (ViewConfig(blur_sigma=(0.0, 1.0)), "view1.blur_sigma"),
    ],
)
def test_bad_view_config_names_the_field(view: ViewConfig, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        TwoViewAugment(AugmentConfig(view1=view))
    with pytest.raises(ValueError, match=field.replace("view1", "view2").replace(".", r"\.")):
        TwoViewAugment(AugmentConfig(view2=view))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (AugmentConfig(image_size=0), "image_size"),
        (AugmentConfig(image_size=-3), "image_size"),
        (AugmentConfig(image_size=3.5), "image_size"),  # type: ignore[arg-type]
        (AugmentConfig(mean=[0.5, 0.5]), "mean"),
        (AugmentConfig(std=[0.2, 0.0, 0.2]), "std"),
    ],
)
@pytest.mark.parametrize("module", [TwoViewAugment, EvalTransform])
def test_bad_config_names_the_field(config: AugmentConfig, field: str, module: type) -> None:
    with pytest.raises(ValueError, match=field):
        module(config)


@pytest.mark.parametrize(
    "images",
    [
        torch.zeros(3, 32, 32, dtype=torch.uint8),  # missing batch axis
        torch.zeros(2, 4, 32, 32, dtype=torch.uint8),  # RGBA
        torch.zeros(2, 32, 32, 3, dtype=torch.uint8),  # channels last
        torch.zeros(2, 3, 32, 32, dtype=torch.int32),
        np.zeros((2, 3, 32, 32), dtype=np.uint8),
    ],
)
@pytest.mark.parametrize("module", [TwoViewAugment, EvalTransform])
def test_bad_images_raise(images: object, module: type) -> None:
    with pytest.raises(ValueError, match="images"):
        module(AugmentConfig())(images)


def test_eval_transform_normalizes_and_resizes() -> None:
    cfg = augment_preset("byol")
    images = _uint8(4, 32)
    ref = (images.double() / 255 - torch.tensor(cfg.mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        cfg.std, dtype=torch.float64
    ).view(1, 3, 1, 1)
    out = EvalTransform(cfg)(images)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)
    floats = images.float() / 255
    kept = floats.clone()
    EvalTransform(cfg)(floats)
    assert torch.equal(floats, kept)
    small = EvalTransform(replace(cfg, image_size=16))
    assert small(images).shape == (4, 3, 16, 16)
    assert small(_uint8(4, 8)).shape == (4, 3, 16, 16)
    wide = torch.zeros(2, 3, 20, 40, dtype=torch.uint8)
    wide[..., 5:35] = 255  # dark sides that the centre crop drops (a squash to 16 x 16 would keep them)
    out = small(wide, normalize=False)
    assert out.shape == (2, 3, 16, 16) and out.min() > 0.99


def test_views_are_float32_inside_a_bf16_autocast_region() -> None:
    # the training step augments inside its autocast region; the blur's conv2d must not come out bf16
    # (it once did, and index_copy_ of a bf16 blur into the fp32 batch failed when some samples were blurred)
    config = AugmentConfig(image_size=16, view1=ViewConfig(blur_prob=0.5), view2=ViewConfig(blur_prob=0.5))
    augment = TwoViewAugment(config)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    expected = augment(images, generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        views = augment(images, generator=torch.Generator().manual_seed(3))
    for view, reference in zip(views, expected):
        assert view.dtype == torch.float32
        assert torch.equal(view, reference)


def _multi_crop(global_crops: int = 3, local_crops: int = 4, local_size: int = 8) -> AugmentConfig:
    cfg = augment_preset("byol", 16, "cifar10")
    cfg.global_crops, cfg.local_crops, cfg.local_size = global_crops, local_crops, local_size
    return cfg


def test_multi_crop_views_have_their_sizes_and_recipes() -> None:
    aug = TwoViewAugment(_multi_crop())
    images = _uint8(5, 32)
    views = aug(images, generator=torch.Generator().manual_seed(0))
    assert aug.num_views == len(views) == 7
    assert [v.shape[-1] for v in views] == [16, 16, 16, 8, 8, 8, 8]
    recipes = [r for r, _ in aug.recipes()]
    assert recipes[:3] == [aug.config.view1, aug.config.view2, aug.config.view1]  # global recipes alternate
    assert all(r is aug.config.local for r in recipes[3:])


def test_two_global_crops_are_the_two_view_augmentation_whatever_the_locals() -> None:
    images = _uint8(6, 32)
    two = TwoViewAugment(augment_preset("byol", 16, "cifar10"))(images, generator=torch.Generator().manual_seed(4))
    many = TwoViewAugment(_multi_crop(2, 3))(images, generator=torch.Generator().manual_seed(4))
    assert len(many) == 5
    for a, b in zip(two, many[:2]):  # the locals are drawn after the globals
        assert torch.equal(a, b)


def test_a_ranks_share_of_multi_crop_is_its_rows_of_the_whole_batch() -> None:
    aug = TwoViewAugment(_multi_crop())
    images = _uint8(8, 32)
    whole = aug(images, generator=torch.Generator().manual_seed(7))
    for rows in (slice(0, 4), slice(4, 8)):
        part = aug(images[rows], generator=torch.Generator().manual_seed(7), rows=rows, global_batch=8)
        for a, b in zip(whole, part):
            torch.testing.assert_close(a[rows], b)


def test_local_crops_cover_their_scale_range() -> None:
    from covssl.augment import sample_view_params

    cfg = _multi_crop()
    params = sample_view_params(4000, 32, 32, cfg.local, torch.Generator().manual_seed(0))
    area = params.boxes[:, 2] * params.boxes[:, 3] / (32 * 32)
    low, high = cfg.local.crop_scale
    assert area.min() >= low * 0.8 and area.max() <= high * 1.2  # integer boxes round the area
    assert area.mean() == pytest.approx((low + high) / 2, abs=0.05)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("global_crops", 0, "global_crops: expected an integer >= 1"), ("local_crops", -1, "local_crops"),
     ("local_size", 0, "local_size"), ("global_crops", 1, "at least 2 views in all")],
)
def test_bad_crop_counts_are_named(field: str, value: int, message: str) -> None:
    cfg = augment_preset("byol")
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=message):
        TwoViewAugment(cfg)

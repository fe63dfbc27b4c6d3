"""Tests of covssl/augment/presets.py: each paper's recipe, the digits flavour, bad names."""

from __future__ import annotations

import doctest

import pytest
import torch

from covssl.augment import TwoViewAugment, augment_preset, list_augment_presets, validate_augment_config
from covssl.augment import presets

RECIPES = ["byol", "emp_ssl", "simclr", "simsiam"]
DATASETS = ["cifar10", "cifar100", "imagefolder", "digits"]


def test_doctests() -> None:
    assert doctest.testmod(presets, raise_on_error=False).failed == 0


def test_the_recipes_are_listed() -> None:
    assert list_augment_presets() == RECIPES


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", RECIPES)
def test_every_preset_is_valid_and_runs(method: str, dataset: str) -> None:
    cfg = augment_preset(method, 16, dataset)
    validate_augment_config(cfg)
    assert cfg.image_size == 16
    v1, v2 = TwoViewAugment(cfg)(torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8))
    assert v1.shape == v2.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_simclr_and_simsiam_cifar_recipes(dataset: str) -> None:
    for method, min_scale in (("simclr", 0.08), ("simsiam", 0.2)):
        cfg = augment_preset(method, 32, dataset)
        for view in (cfg.view1, cfg.view2):  # symmetric
            assert tuple(view.crop_scale) == (min_scale, 1.0)
            assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.4, 0.4, 0.4, 0.1)
            assert (view.jitter_prob, view.grayscale_prob, view.hflip_prob) == (0.8, 0.2, 0.5)
            assert view.blur_prob == 0.0 and view.solarize_prob == 0.0  # no blur on CIFAR


def test_byol_style_views_are_asymmetric() -> None:
    small, large = augment_preset("byol", 32, "cifar10"), augment_preset("byol", 96, "imagefolder")
    for cfg in (small, large):
        assert (cfg.view1.solarize_prob, cfg.view2.solarize_prob) == (0.0, 0.2)
        for view in (cfg.view1, cfg.view2):
            assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.4, 0.4, 0.2, 0.1)
            assert tuple(view.crop_scale) == (0.08, 1.0)
    assert (small.view1.blur_prob, small.view2.blur_prob) == (0.0, 0.0)  # dropped on 32-px images
    assert (large.view1.blur_prob, large.view2.blur_prob) == (1.0, 0.1)  # the papers' ImageNet values


def test_imagefolder_simclr_uses_the_imagenet_strength() -> None:
    view = augment_preset("simclr", 64, "imagefolder").view1
    assert (view.brightness, view.contrast, view.saturation, view.hue, view.blur_prob) == (0.8, 0.8, 0.8, 0.2, 0.5)


@pytest.mark.parametrize("method", RECIPES)
def test_digits_flavour_overrides_every_method(method: str) -> None:
    cfg = augment_preset(method, 24, "digits")
    for view in (cfg.view1, cfg.view2):
        assert view.hflip_prob == 0.0  # a mirrored digit is another symbol
        assert tuple(view.crop_scale) == (0.5, 1.0)
        assert view.blur_prob == 0.0 and view.solarize_prob == 0.0 and view.grayscale_prob == 0.0
    assert cfg.mean[0] == cfg.mean[1] == cfg.mean[2]


def test_dataset_statistics() -> None:
    assert augment_preset("simclr", 32, "cifar10").mean == pytest.approx([0.4914, 0.4822, 0.4465])
    assert augment_preset("simclr", 32, "cifar100").mean == pytest.approx([0.5071, 0.4865, 0.4409])
    assert augment_preset("simclr", 32, "imagefolder").std == pytest.approx([0.229, 0.224, 0.225])


def test_presets_are_fresh_objects() -> None:
    first = augment_preset("byol")
    first.view1.hflip_prob = 0.0
    first.mean[0] = 9.0
    second = augment_preset("byol")
    assert second.view1.hflip_prob == 0.5 and second.mean[0] == pytest.approx(0.4914)
    assert second.view1 is not second.view2
    second.view1.crop_scale[0] = 0.5  # the views' range lists are not shared either
    assert second.view2.crop_scale[0] == pytest.approx(0.08)


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="recipe.*simclr.*got 'mocov3'"):
        augment_preset("mocov3")
    with pytest.raises(ValueError, match="dataset.*cifar10.*got 'mnist'"):
        augment_preset("simclr", dataset="mnist")
    with pytest.raises(ValueError, match="image_size"):
        augment_preset("simclr", image_size=0)

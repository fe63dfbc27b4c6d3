"""Tests of covssl/augment/config.py: defaults, validation messages, OmegaConf structured configs."""

from __future__ import annotations

import doctest
from dataclasses import fields

import pytest
import torch
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from covssl.augment import AugmentConfig, TwoViewAugment, ViewConfig, validate_augment_config
from covssl.augment import config as config_module


def test_doctests() -> None:
    assert doctest.testmod(config_module, raise_on_error=False).failed == 0


def test_defaults_are_simclr_cifar() -> None:
    view = ViewConfig()
    assert tuple(view.crop_scale) == (0.08, 1.0) and tuple(view.crop_ratio) == pytest.approx((0.75, 4 / 3))
    assert (view.hflip_prob, view.jitter_prob, view.grayscale_prob) == (0.5, 0.8, 0.2)
    assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.4, 0.4, 0.4, 0.1)
    assert (view.blur_prob, view.solarize_prob) == (0.0, 0.0) and tuple(view.blur_sigma) == (0.1, 2.0)
    cfg = AugmentConfig()
    assert cfg.image_size == 32 and cfg.mean == pytest.approx([0.4914, 0.4822, 0.4465])
    validate_augment_config(cfg)


def test_omegaconf_round_trip_with_overrides() -> None:
    schema = OmegaConf.structured(AugmentConfig)
    yaml = "image_size: 24\nview2:\n  solarize_prob: 0.3\n  crop_scale: [0.2, 0.9]\n"
    merged = OmegaConf.merge(schema, OmegaConf.create(yaml), OmegaConf.from_dotlist(["view1.hue=0.05"]))
    validate_augment_config(merged)  # the OmegaConf object itself is accepted
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, AugmentConfig) and isinstance(cfg.view2, ViewConfig)
    assert cfg.image_size == 24 and cfg.view1.hue == 0.05 and cfg.view2.solarize_prob == 0.3
    assert tuple(cfg.view2.crop_scale) == (0.2, 0.9)
    v1, _ = TwoViewAugment(merged)(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert v1.shape == (2, 3, 24, 24)
    # Every field survives YAML.
    again = OmegaConf.to_object(OmegaConf.merge(schema, OmegaConf.create(OmegaConf.to_yaml(merged))))
    assert again == cfg


def test_omegaconf_rejects_unknown_keys_and_wrong_lengths() -> None:
    schema = OmegaConf.structured(AugmentConfig)
    with pytest.raises(ConfigKeyError):
        OmegaConf.merge(schema, OmegaConf.create({"view1": {"hflip": 0.5}}))
    with pytest.raises(ValidationError):
        OmegaConf.merge(schema, OmegaConf.create({"view1": {"hflip_prob": "often"}}))
    bad = OmegaConf.merge(schema, OmegaConf.create({"view1": {"hflip_prob": 2.0}}))
    with pytest.raises(ValueError, match=r"view1\.hflip_prob"):
        TwoViewAugment(bad)
    # A 3-number range: OmegaConf >= 2.4 rejects it at merge time, our validation in any case.
    with pytest.raises((ValidationError, ValueError), match="crop_scale|length"):
        TwoViewAugment(OmegaConf.merge(schema, OmegaConf.create({"view2": {"crop_scale": [0.1, 0.5, 0.9]}})))
    with pytest.raises(ValueError, match=r"view2\.crop_scale"):
        TwoViewAugment(AugmentConfig(view2=ViewConfig(crop_scale=(0.1, 0.5, 0.9))))  # type: ignore[arg-type]


def test_every_view_field_has_a_comment() -> None:
    source = open(config_module.__file__).read()
    for f in fields(ViewConfig) + fields(AugmentConfig):
        line = next(line for line in source.splitlines() if line.strip().startswith(f"{f.name}:"))
        assert "#" in line, f.name

"""Typed configuration of the two-view augmentations, and its validation.

The dataclasses hold every default with a comment; YAML files and CLI flags only override them
(``OmegaConf.structured(AugmentConfig)`` checks names and types). The (min, max) ranges are
``list[float]`` rather than tuples: OmegaConf 2.3 has no tuple fields and 2.4's are experimental
and immutable. Lengths and value ranges are checked by :func:`validate_augment_config`, which
:class:`~covssl.augment.TwoViewAugment` and :class:`~covssl.augment.EvalTransform` call, so a
config edited after construction is still checked before use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# Per-channel statistics of the training sets, in [0, 1] units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # pixel std over the set (not the 0.2023 per-image folklore)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the usual statistics for any natural-image folder
IMAGENET_STD = (0.229, 0.224, 0.225)
# sklearn's 8x8 digits scaled to [0, 1] (x / 16), the same in the three gray channels.
DIGITS_MEAN = (0.3053, 0.3053, 0.3053)
DIGITS_STD = (0.3760, 0.3760, 0.3760)

DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "imagefolder": (IMAGENET_MEAN, IMAGENET_STD),
    "digits": (DIGITS_MEAN, DIGITS_STD),
}


@dataclass
class ViewConfig:
    """How one of the two views is drawn; the defaults are SimCLR's CIFAR recipe."""

    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # crop area / image area (min, max)
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])  # width / height (min, max), log-uniform
    hflip_prob: float = 0.5  # probability of a left-right mirror
    jitter_prob: float = 0.8  # probability of the colour jitter (all four factors at once)
    brightness: float = 0.4  # brightness factor drawn from [max(0, 1 - b), 1 + b]
    contrast: float = 0.4  # contrast factor drawn from [max(0, 1 - c), 1 + c]
    saturation: float = 0.4  # saturation factor drawn from [max(0, 1 - s), 1 + s]
    hue: float = 0.1  # hue shift in turns drawn from [-h, h], h <= 0.5
    grayscale_prob: float = 0.2  # probability of replacing RGB by its luma
    blur_prob: float = 0.0  # probability of a Gaussian blur (0: SimCLR drops it on CIFAR)
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])  # blur std in pixels (min, max)
    solarize_prob: float = 0.0  # probability of inverting the pixels >= 0.5 (BYOL's second view)


def _local_view() -> ViewConfig:
    return ViewConfig(crop_scale=[0.05, 0.4])  # DINO's local crops: small parts of the image


@dataclass
class AugmentConfig:
    """The views (two global crops by default) plus their sizes and normalization (CIFAR-10 statistics).

    Multi-crop (Caron et al. 2020, SwAV; DINO): ``global_crops`` views at ``image_size`` follow
    the recipes view1, view2, view1, ... in turn; ``local_crops`` more views at ``local_size``
    follow ``local``. The random parameters are drawn in that order, so two global crops and no
    local ones are exactly the two views of a two-view run.
    """

    image_size: int = 32  # side of the square global views, in pixels
    view1: ViewConfig = field(default_factory=ViewConfig)  # the first (and third, ...) global view's recipe
    view2: ViewConfig = field(default_factory=ViewConfig)  # the second (and fourth, ...) global view's recipe
    mean: list[float] = field(default_factory=lambda: list(CIFAR10_MEAN))  # per-channel mean, RGB
    std: list[float] = field(default_factory=lambda: list(CIFAR10_STD))  # per-channel std, RGB
    global_crops: int = 2  # views at image_size (multi-crop's global views)
    local_crops: int = 0  # extra views at local_size (multi-crop's local views); 0: none
    local_size: int = 16  # side of the local views, in pixels
    local: ViewConfig = field(default_factory=_local_view)  # the local views' recipe


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _check_probability(value: object, name: str) -> None:
    if not _is_number(value) or not 0.0 <= value <= 1.0:  # type: ignore[operator]
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")


def _check_pair(value: object, name: str, low: float, high: float, low_open: bool) -> None:
    """A (min, max) range with low (<) <= min <= max <= high."""
    ok = isinstance(value, Sequence) and len(value) == 2 and all(_is_number(v) for v in value)
    if ok:
        lo, hi = value  # type: ignore[misc]
        ok = (lo > low if low_open else lo >= low) and lo <= hi <= high
    if not ok:
        bound = "<" if low_open else "<="
        raise ValueError(f"{name}: expected (min, max) with {low} {bound} min <= max <= {high}, got {value!r}")


def _check_non_negative(value: object, name: str, high: float = math.inf) -> None:
    if not _is_number(value) or not 0.0 <= value <= high:  # type: ignore[operator]
        raise ValueError(f"{name}: expected a number in [0, {high}], got {value!r}")


def validate_view_config(view: ViewConfig, prefix: str = "") -> None:
    """Raise ValueError naming the first field of ``view`` that is out of range.

    Args:
        view: the view recipe to check.
        prefix: prepended to field names in messages, e.g. ``"view1."``.

    Examples:
        >>> validate_view_config(ViewConfig())
        >>> validate_view_config(ViewConfig(hflip_prob=2.0), "view1.")
        Traceback (most recent call last):
        ...
        ValueError: view1.hflip_prob: expected a probability in [0, 1], got 2.0
    """
    _check_pair(view.crop_scale, prefix + "crop_scale", 0.0, 1.0, low_open=True)
    _check_pair(view.crop_ratio, prefix + "crop_ratio", 0.0, math.inf, low_open=True)
    for name in ("hflip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
        _check_probability(getattr(view, name), prefix + name)
    for name in ("brightness", "contrast", "saturation"):
        _check_non_negative(getattr(view, name), prefix + name)
    _check_non_negative(view.hue, prefix + "hue", high=0.5)  # +-0.5 turn already covers the wheel
    _check_pair(view.blur_sigma, prefix + "blur_sigma", 0.0, math.inf, low_open=True)


def validate_augment_config(config: AugmentConfig) -> None:
    """Raise ValueError naming the first field of ``config`` that is out of range.

    Args:
        config: the augmentation config (a dataclass, or an OmegaConf object of that schema).

    Examples:
        >>> validate_augment_config(AugmentConfig(image_size=0))
        Traceback (most recent call last):
        ...
        ValueError: image_size: expected an integer >= 1, got 0
    """
    size = config.image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"image_size: expected an integer >= 1, got {size!r}")
    validate_view_config(config.view1, "view1.")
    validate_view_config(config.view2, "view2.")
    for name, low in (("global_crops", 1), ("local_crops", 0), ("local_size", 1)):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if config.global_crops + config.local_crops < 2:
        raise ValueError(
            f"global_crops: expected at least 2 views in all, got {config.global_crops} global and "
            f"{config.local_crops} local"
        )
    if config.local_crops:
        validate_view_config(config.local, "local.")
    for name in ("mean", "std"):
        values = getattr(config, name)
        if not isinstance(values, Sequence) or len(values) != 3 or not all(_is_number(v) for v in values):
            raise ValueError(f"{name}: expected 3 finite numbers (R, G, B), got {values!r}")
    if not all(s > 0 for s in config.std):
        raise ValueError(f"std: expected 3 numbers > 0, got {config.std!r}")

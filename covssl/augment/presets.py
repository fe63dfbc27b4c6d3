"""Each paper's augmentation recipe as an :class:`AugmentConfig`, by recipe and dataset.

Four recipes cover every method in covssl (each method names its recipe):

* symmetric SimCLR-style views: crop + flip + colour jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8 +
  grayscale p = 0.2; SimSiam only raises the smallest crop to 20% of the image;
* asymmetric BYOL-style views (BYOL, VICReg, Barlow Twins): saturation 0.2 instead of 0.4,
  blur p = 1.0 / 0.1 and solarize p = 0.0 / 0.2 on the two views;
* EMP-SSL's fixed-size patches: a square quarter of the image, resized to the view size.

Multi-crop's local views (``local_crops`` > 0) take the first view's colours on 5-40% of the
image, as DINO's local crops do.

On 32 x 32 images (CIFAR, digits) the blur is dropped from both families: SimCLR's authors
dropped it on CIFAR-10 (appendix B.9), and solo-learn's and lightly's CIFAR recipes for BYOL,
VICReg and Barlow Twins do too, because a sigma of up to 2 px on a 32 px image wipes out most of
the object. Solarize, which keeps the shapes, stays. ``dataset="imagefolder"`` (larger natural
images) uses the papers' ImageNet recipes, blur included.

``dataset="digits"`` (sklearn's 8 x 8 digits upsampled to 16-32 px) overrides every method with
one mild recipe: no flip (a mirrored 2 or 7 is not the same digit), crops of 50-100% (a 10%
crop of an 8 x 8 digit is a blob), brightness/contrast jitter only (the images are gray, so
saturation, hue and grayscale do nothing), no blur or solarize.

[0] Chen, Kornblith, Norouzi, Hinton, 2020, https://arxiv.org/abs/2002.05709 (SimCLR)
[1] Chen, He, 2021, https://arxiv.org/abs/2011.10566 (SimSiam)
[2] Grill et al., 2020, https://arxiv.org/abs/2006.07733 (BYOL)
[3] Bardes, Ponce, LeCun, 2021, https://arxiv.org/abs/2105.04906 (VICReg)
[4] Zbontar, Jing, Misra, LeCun, Deny, 2021, https://arxiv.org/abs/2103.03230 (Barlow Twins)
[5] Wu et al., 2025, https://arxiv.org/abs/2502.10385 (SimDINO, coding-rate SSL)
[6] Ozsoy, Hamdan, Arik, Yuret, Erdogan, 2022, https://arxiv.org/abs/2209.14905 (CorInfoMax)
[7] da Costa, Fini, Nabi, Sebe, Ricci, 2022, https://arxiv.org/abs/2108.01775 (solo-learn)
[8] Tong, Chen, Ma, LeCun, 2023, https://arxiv.org/abs/2304.03977 (EMP-SSL)
"""

from __future__ import annotations

from covssl.registry import Registry

from collections.abc import Callable
from copy import deepcopy
from dataclasses import replace

from covssl.augment.config import DATASET_STATS, AugmentConfig, ViewConfig

Recipe = Callable[[bool], tuple[ViewConfig, ViewConfig]]  # small_images -> (view1, view2)


def _simclr(small: bool) -> tuple[ViewConfig, ViewConfig]:
    # [0] CIFAR-10: colour strength s = 0.5 -> (0.8 s, 0.8 s, 0.8 s, 0.2 s), no blur (B.9).
    # ImageNet: s = 1.0 and blur with p = 0.5.
    if small:
        view = ViewConfig()
    else:
        view = ViewConfig(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, blur_prob=0.5)
    return view, deepcopy(view)  # deep: the (min, max) lists must not be shared


def _simsiam(small: bool) -> tuple[ViewConfig, ViewConfig]:
    # [1] CIFAR (appendix): RandomResizedCrop scale (0.2, 1), jitter (0.4, 0.4, 0.4, 0.1) p = 0.8,
    # grayscale 0.2; ImageNet adds blur p = 0.5.
    view = ViewConfig(crop_scale=[0.2, 1.0], blur_prob=0.0 if small else 0.5)
    return view, deepcopy(view)  # deep: the (min, max) lists must not be shared


def _byol_style(small: bool) -> tuple[ViewConfig, ViewConfig]:
    # [2] table 6, reused verbatim by [3] and [4]: saturation 0.2, blur 1.0 / 0.1, solarize 0 / 0.2.
    # Small images drop the blur ([7]'s CIFAR configs), keeping the solarize asymmetry.
    view1 = ViewConfig(saturation=0.2, blur_prob=0.0 if small else 1.0, solarize_prob=0.0)
    view2 = ViewConfig(saturation=0.2, blur_prob=0.0 if small else 0.1, solarize_prob=0.2)
    return view1, view2


def _emp_ssl(small: bool) -> tuple[ViewConfig, ViewConfig]:
    # [8] fixed-size patches: a quarter of the image (16 x 16 of 32 x 32) resized to the view
    # size, jitter (0.4, 0.4, 0.4, 0.2) p = 0.8, grayscale 0.2, blur 0.1, solarize 0.1
    view = ViewConfig(
        crop_scale=[0.25, 0.25], crop_ratio=[1.0, 1.0], hue=0.2, blur_prob=0.1, solarize_prob=0.1
    )
    return view, deepcopy(view)  # deep: the (min, max) lists must not be shared


def _digits() -> tuple[ViewConfig, ViewConfig]:
    view = ViewConfig(
        crop_scale=[0.5, 1.0], hflip_prob=0.0, saturation=0.0, hue=0.0, grayscale_prob=0.0
    )
    return view, deepcopy(view)  # deep: the (min, max) lists must not be shared


_RECIPES: Registry[Recipe] = Registry("augmentation recipe")
_RECIPES.register("simclr", _simclr)
_RECIPES.register("simsiam", _simsiam)
# BYOL's asymmetric views, reused by VICReg, Barlow Twins, SimDINO's global crops and CorInfoMax
_RECIPES.register("byol", _byol_style)
_RECIPES.register("emp_ssl", _emp_ssl)


def list_augment_presets() -> list[str]:
    """Names accepted by :func:`augment_preset`, sorted."""
    return _RECIPES.names()


def augment_preset(recipe: str, image_size: int = 32, dataset: str = "cifar10") -> AugmentConfig:
    """The augmentation recipe ``recipe`` (a paper's views) for ``dataset``.

    Args:
        recipe: one of :func:`list_augment_presets`: "simclr", "simsiam", "byol" (BYOL's
            asymmetric views, which VICReg, Barlow Twins, SimDINO and CorInfoMax reuse) or
            "emp_ssl" (fixed-size patches); each method names its recipe (``covssl methods``).
        image_size: side of the square output views in pixels (the blur kernel follows it).
        dataset: "cifar10", "cifar100" or "digits" (32-px recipes, no blur) or "imagefolder"
            (the papers' ImageNet recipes and ImageNet mean/std).

    Returns:
        The config; change fields freely and :class:`TwoViewAugment` re-checks them.

    Raises:
        ValueError: unknown recipe or dataset (the message lists the choices), or a bad
            image_size.

    Examples:
        >>> cfg = augment_preset("byol")
        >>> (cfg.view1.solarize_prob, cfg.view2.solarize_prob, cfg.view1.blur_prob)
        (0.0, 0.2, 0.0)
        >>> augment_preset("simsiam", 16, "digits").view1.hflip_prob
        0.0
    """
    if recipe not in _RECIPES:
        raise ValueError(f"recipe: expected one of {list_augment_presets()}, got {recipe!r}")
    if dataset not in DATASET_STATS:
        raise ValueError(f"dataset: expected one of {sorted(DATASET_STATS)}, got {dataset!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size: expected an integer >= 1, got {image_size!r}")
    if dataset == "digits":
        view1, view2 = _digits()
        local = replace(view1, crop_scale=[0.25, 0.5])  # a 5% crop of an 8 x 8 digit is a blob
    else:
        view1, view2 = _RECIPES[recipe](dataset != "imagefolder")
        # DINO's local crops: the first view's colours on 5-40% of the image, blur p = 0.5 (none on
        # small images), no solarize
        blur = 0.0 if dataset != "imagefolder" else 0.5
        local = replace(view1, crop_scale=[0.05, 0.4], blur_prob=blur, solarize_prob=0.0)
    mean, std = DATASET_STATS[dataset]
    return AugmentConfig(
        image_size=image_size, view1=view1, view2=view2, mean=list(mean), std=list(std), local=deepcopy(local)
    )

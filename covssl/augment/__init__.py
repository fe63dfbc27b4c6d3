"""Batched two-view augmentations on tensors, on the model's device.

``augment_preset(recipe, image_size, dataset)`` gives each paper's recipe as an
:class:`AugmentConfig`; :class:`TwoViewAugment` turns a uint8 batch (batch, 3, H, W) into two
normalized float views; :class:`EvalTransform` is the deterministic counterpart for evaluation.
"""

from covssl.augment.config import AugmentConfig, ViewConfig, validate_augment_config, validate_view_config
from covssl.augment.pipeline import EvalTransform, TwoViewAugment, augment_view
from covssl.augment.presets import augment_preset, list_augment_presets
from covssl.augment.sampling import ViewParams, sample_crop_boxes, sample_view_params

__all__ = [
    "AugmentConfig",
    "EvalTransform",
    "TwoViewAugment",
    "ViewConfig",
    "ViewParams",
    "augment_preset",
    "augment_view",
    "list_augment_presets",
    "sample_crop_boxes",
    "sample_view_params",
    "validate_augment_config",
    "validate_view_config",
]

"""Two augmented views of a whole batch, in one tensor program on the batch's device.

Per view and per sample, in the order of SimCLR/BYOL's torchvision pipelines:

    random resized crop -> horizontal flip (p) -> colour jitter (p; brightness, contrast,
    saturation, hue in a random order) -> grayscale (p) -> Gaussian blur (p) -> solarize (p)
    -> (x - mean) / std

Random parameters are drawn first, on the CPU, from torch's global generator or the one given
(:mod:`covssl.augment.sampling`), then applied by the pure functions of
:mod:`covssl.augment.ops`. Hence:

* the same ``torch.manual_seed`` (or restored ``torch.get_rng_state()``) gives the same views,
  on any device, which is what an exactly resumed run needs;
* probability masks are known on the host, so skipped samples cost nothing and no device sync
  happens.

[0] Chen, Kornblith, Norouzi, Hinton, 2020, https://arxiv.org/abs/2002.05709
[1] Grill et al., 2020, https://arxiv.org/abs/2006.07733
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from covssl.augment import ops
from covssl.augment.config import AugmentConfig, ViewConfig, validate_augment_config
from covssl.augment.sampling import ViewParams, sample_view_params


def _apply_to(
    x: torch.Tensor, mask: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Apply ``fn(images, sample_indices)`` to the masked samples only (x is our own buffer)."""
    if not bool(mask.any()):
        return x
    if bool(mask.all()):
        return fn(x, torch.arange(x.shape[0]))
    idx = mask.nonzero().squeeze(1)  # on the host: no device sync
    idx_dev = idx.to(x.device)
    return x.index_copy_(0, idx_dev, fn(x.index_select(0, idx_dev), idx))


_JITTER_STEPS = (ops.adjust_brightness, ops.adjust_contrast, ops.adjust_saturation, ops.adjust_hue)


def augment_view(images: torch.Tensor, params: ViewParams, size: int, blur_kernel: int) -> torch.Tensor:
    """Apply one view's parameters to a float batch in [0, 1] (no normalization).

    Args:
        images: float images in [0, 1], shape (batch, 3, H, W), any device.
        params: from :func:`sample_view_params` for the same batch size and H, W.
        size: output side in pixels.
        blur_kernel: odd Gaussian kernel side (see ``ops.blur_kernel_size``).

    Returns:
        The view in [0, 1], shape (batch, 3, size, size).

    Examples:
        >>> x = torch.rand(4, 3, 32, 32)
        >>> params = sample_view_params(4, 32, 32, ViewConfig(blur_prob=1.0))
        >>> augment_view(x, params, 16, blur_kernel=3).shape
        torch.Size([4, 3, 16, 16])
    """
    # The views are data, made in float32 even inside a training step's autocast region: under bf16
    # autocast the blur's conv2d would come out bf16 and no longer fit back into the fp32 batch.
    with torch.autocast(images.device.type, enabled=False):
        return _augment_view(images, params, size, blur_kernel)


def _augment_view(images: torch.Tensor, params: ViewParams, size: int, blur_kernel: int) -> torch.Tensor:
    x = ops.resized_crop(images, params.boxes, size, params.flip)  # (batch, 3, size, size), a new buffer

    def jitter(sub: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        factors = params.factors[idx]  # (n, 4)
        for step in params.order.tolist():
            sub = _JITTER_STEPS[step](sub, factors[:, step])
        return sub

    x = _apply_to(x, params.jitter, jitter)
    x = _apply_to(x, params.gray, lambda sub, idx: ops.rgb_to_gray(sub).expand_as(sub).contiguous())
    x = _apply_to(x, params.blur, lambda sub, idx: ops.gaussian_blur(sub, params.sigma[idx], blur_kernel))
    return _apply_to(x, params.solarize, lambda sub, idx: ops.solarize(sub))


def to_unit_float(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Check a (batch, 3, H, W) image batch and return it as float32 in [0, 1] (uint8 is divided by 255).

    Float inputs are taken to be in [0, 1] already; they are not scanned (that would sync a GPU).

    Raises:
        ValueError: not a tensor, not (batch, 3, H, W), empty, or neither uint8 nor floating.

    Examples:
        >>> to_unit_float(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)).max().item()
        1.0
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (batch, 3, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (batch, 3, H, W), got {tuple(images.shape)}")
    if images.shape[0] < 1 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"{name}: expected a non-empty batch, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected uint8 or a floating dtype in [0, 1], got {images.dtype}")
    return images.float()


class _Normalized(nn.Module):
    """Holds the validated config and mean/std buffers (moved by ``.to(device)``, not saved)."""

    def __init__(self, config: AugmentConfig) -> None:
        super().__init__()
        validate_augment_config(config)
        self.config = config
        self.register_buffer("mean", torch.tensor(list(config.mean)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(config.std)).view(1, 3, 1, 1), persistent=False)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x.sub_(self.mean.to(x.device)).div_(self.std.to(x.device))


class TwoViewAugment(_Normalized):
    """Independently augmented views of a uint8 (or [0, 1] float) image batch: two, or multi-crop.

    Args:
        config: both view recipes, the output size and mean/std (see :func:`augment_preset`).

    Examples:
        >>> aug = TwoViewAugment(AugmentConfig(image_size=16))
        >>> v1, v2 = aug(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
        >>> v1.shape, v1.dtype
        (torch.Size([4, 3, 16, 16]), torch.float32)
    """

    def __init__(self, config: AugmentConfig) -> None:
        super().__init__(config)
        self.blur_kernel = ops.blur_kernel_size(config.image_size)
        self._kernels = {size: ops.blur_kernel_size(size) for size in (config.image_size, config.local_size)}

    @property
    def num_views(self) -> int:
        """Global plus local views per image (2 for a two-view run)."""
        return self.config.global_crops + self.config.local_crops

    def recipes(self) -> list[tuple[ViewConfig, int]]:
        """(recipe, output size) of each view, in order: the global views, then the local ones."""
        cfg = self.config
        global_views = [(cfg.view1 if i % 2 == 0 else cfg.view2, cfg.image_size) for i in range(cfg.global_crops)]
        return global_views + [(cfg.local, cfg.local_size)] * cfg.local_crops

    def forward(
        self,
        images: torch.Tensor,
        normalize: bool = True,
        generator: torch.Generator | None = None,
        rows: slice | None = None,
        global_batch: int | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Return the views: (view1, view2) by default, each float32 (batch, 3, image_size, image_size)
        on the input's device; with multi-crop the global views, then the local views
        (batch, 3, local_size, local_size).

        Under data parallelism each process holds ``rows`` of a global batch of ``global_batch``
        images. The random parameters of the *whole* global batch are drawn (the same generator on
        every process) and only this process's rows are applied, so a sample's views depend
        neither on the process that augments it nor on the world size.

        Args:
            images: uint8 or float in [0, 1], shape (batch, 3, H, W): the whole batch, or ``rows``
                of the global batch.
            normalize: subtract mean and divide by std; False returns the views in [0, 1].
            generator: CPU random generator; torch's global one when None.
            rows: which rows of the global batch ``images`` are (None: all of it).
            global_batch: the global batch size, needed with ``rows``.
        """
        x = to_unit_float(images)
        batch, _, height, width = x.shape
        if rows is not None:
            if global_batch is None:
                raise ValueError("global_batch: expected the global batch size together with rows")
            if len(range(global_batch)[rows]) != batch:
                raise ValueError(f"rows: {rows} of a batch of {global_batch} are not the {batch} images given")
        drawn = global_batch if rows is not None else batch
        recipes = self.recipes()
        params = [sample_view_params(drawn, height, width, view, generator) for view, _ in recipes]
        if rows is not None:
            params = [p.select(rows) for p in params]
        views = tuple(augment_view(x, p, size, self._kernels[size]) for p, (_, size) in zip(params, recipes))
        if normalize:
            views = tuple(self._normalize(v) for v in views)
        return views  # type: ignore[return-value]


class EvalTransform(_Normalized):
    """Deterministic evaluation transform: to float, resize to ``image_size``, normalize.

    Non-square or differently sized inputs have their short side resized (bilinear, antialiased)
    to ``image_size`` and are then centre-cropped to a square.

    Args:
        config: only ``image_size``, ``mean`` and ``std`` are used.

    Examples:
        >>> ev = EvalTransform(AugmentConfig(image_size=16))
        >>> ev(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape
        torch.Size([2, 3, 16, 16])
    """

    def forward(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Return float32 (batch, 3, image_size, image_size) on the input's device."""
        x = to_unit_float(images)
        size = self.config.image_size
        height, width = x.shape[-2:]
        if (height, width) != (size, size):
            short = min(height, width)
            new_hw = (max(size, round(height * size / short)), max(size, round(width * size / short)))
            x = F.interpolate(x, size=new_hw, mode="bilinear", align_corners=False, antialias=True)
            top, left = (new_hw[0] - size) // 2, (new_hw[1] - size) // 2
            x = x[:, :, top : top + size, left : left + size].contiguous()
        elif x is images:
            x = x.clone()  # normalize in place below must not touch the caller's tensor
        return self._normalize(x) if normalize else x

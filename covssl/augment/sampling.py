"""Random parameters of one augmented view, drawn for a whole batch on the CPU.

Everything random about a view is drawn here, in a fixed order, from torch's global generator
(or the one given) and kept on the host. The same ``torch.manual_seed`` (or a restored
``torch.get_rng_state()``) therefore gives the same parameters, whatever device the images are
on, and the probability masks can pick samples without a device sync.

The crop follows torchvision's ``RandomResizedCrop``: up to 10 draws of a box whose area
fraction is uniform in ``crop_scale`` and whose aspect is log-uniform in ``crop_ratio``, the
first that fits, else the central box of clamped aspect. One jitter order is drawn per view and
call (as kornia does); torchvision draws one per image.

[0] Szegedy et al., 2015, https://arxiv.org/abs/1409.4842 (the random resized crop)
[1] Chen, Kornblith, Norouzi, Hinton, 2020, https://arxiv.org/abs/2002.05709
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from covssl.augment.config import ViewConfig

_CROP_TRIES = 10  # torchvision's number of attempts before the central fallback


@dataclass
class ViewParams:
    """Random parameters of one view for a batch (all CPU tensors)."""

    boxes: torch.Tensor  # (batch, 4) float: top, left, height, width in input pixels
    flip: torch.Tensor  # (batch,) bool
    jitter: torch.Tensor  # (batch,) bool: colour jitter applied
    factors: torch.Tensor  # (batch, 4): brightness, contrast, saturation factors, hue shift
    order: torch.Tensor  # (4,) permutation of 0..3, the jitter steps in that order
    gray: torch.Tensor  # (batch,) bool
    blur: torch.Tensor  # (batch,) bool
    sigma: torch.Tensor  # (batch,) blur std in pixels
    solarize: torch.Tensor  # (batch,) bool

    def select(self, rows: slice) -> "ViewParams":
        """The parameters of ``rows`` of the batch (the jitter order is one per call and stays)."""
        return ViewParams(**{
            name: value if name == "order" else value[rows] for name, value in vars(self).items()
        })


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def sample_crop_boxes(
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integer crop boxes with torchvision ``RandomResizedCrop``'s distribution, for a whole batch.

    Args:
        batch: number of boxes.
        height: input image height in pixels.
        width: input image width in pixels.
        scale: (min, max) box area as a fraction of the image area.
        ratio: (min, max) box width / height, drawn log-uniformly.
        generator: random generator; torch's global one when None.

    Returns:
        Boxes (top, left, height, width), shape (batch, 4), float64 holding integers.

    Examples:
        >>> sample_crop_boxes(2, 32, 32, (1.0, 1.0), (1.0, 1.0)).tolist()
        [[0.0, 0.0, 32.0, 32.0], [0.0, 0.0, 32.0, 32.0]]
    """
    area = _uniform((batch, _CROP_TRIES), scale[0], scale[1], generator) * (height * width)
    aspect = torch.exp(_uniform((batch, _CROP_TRIES), math.log(ratio[0]), math.log(ratio[1]), generator))
    box_w = torch.round(torch.sqrt(area * aspect))  # (batch, tries)
    box_h = torch.round(torch.sqrt(area / aspect))
    fits = (box_w >= 1) & (box_w <= width) & (box_h >= 1) & (box_h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting try (0 if none)
    box_w = box_w.gather(1, first).squeeze(1)
    box_h = box_h.gather(1, first).squeeze(1)
    # Fallback: the largest central box whose aspect is clamped into the ratio range.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fb_w, fb_h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fb_w, fb_h = round(height * ratio[1]), height
    else:
        fb_w, fb_h = width, height
    found = fits.any(dim=1)
    box_w = torch.where(found, box_w, torch.full_like(box_w, fb_w))
    box_h = torch.where(found, box_h, torch.full_like(box_h, fb_h))
    # Uniform integer position, as randint(0, H - h + 1); the fallback box is centred instead.
    pos = torch.rand((batch, 2), generator=generator, dtype=torch.float64)
    top = torch.where(found, torch.floor(pos[:, 0] * (height - box_h + 1)), torch.floor((height - box_h) / 2))
    left = torch.where(found, torch.floor(pos[:, 1] * (width - box_w + 1)), torch.floor((width - box_w) / 2))
    return torch.stack((top, left, box_h, box_w), dim=1)


def sample_view_params(
    batch: int, height: int, width: int, view: ViewConfig, generator: torch.Generator | None = None
) -> ViewParams:
    """Draw every random parameter of one view for a batch, in a fixed order, on the CPU.

    Args:
        batch: number of images.
        height: input image height in pixels.
        width: input image width in pixels.
        view: the view's recipe (assumed valid; see ``validate_view_config``).
        generator: random generator; torch's global one when None.

    Returns:
        The parameters; Bernoulli masks are ``rand < p`` so p = 0 never and p = 1 always fires.

    Examples:
        >>> params = sample_view_params(4, 32, 32, ViewConfig(hflip_prob=1.0))
        >>> params.flip.tolist()
        [True, True, True, True]
    """

    def coin(p: float) -> torch.Tensor:
        return torch.rand(batch, generator=generator, dtype=torch.float64) < p

    boxes = sample_crop_boxes(batch, height, width, tuple(view.crop_scale), tuple(view.crop_ratio), generator)
    flip = coin(view.hflip_prob)
    jitter = coin(view.jitter_prob)
    factors = torch.stack(
        (
            _uniform((batch,), max(0.0, 1 - view.brightness), 1 + view.brightness, generator),
            _uniform((batch,), max(0.0, 1 - view.contrast), 1 + view.contrast, generator),
            _uniform((batch,), max(0.0, 1 - view.saturation), 1 + view.saturation, generator),
            _uniform((batch,), -view.hue, view.hue, generator),
        ),
        dim=1,
    )  # (batch, 4)
    order = torch.randperm(4, generator=generator)
    gray = coin(view.grayscale_prob)
    blur = coin(view.blur_prob)
    sigma = _uniform((batch,), view.blur_sigma[0], view.blur_sigma[1], generator)
    solar = coin(view.solarize_prob)
    return ViewParams(boxes, flip, jitter, factors.float(), order, gray, blur, sigma.float(), solar)

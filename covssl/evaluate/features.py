"""Frozen features of a dataset: from an encoder, or raw pixels (the baseline every SSL run must beat)."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn


def iterate_batches(images: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 (B, 3, H, W) tensors from an (N, H, W, 3) uint8 array, in order."""
    for start in range(0, len(images), batch_size):
        # np.array copies: a read-only memory map cannot back a tensor without a warning
        yield torch.from_numpy(np.array(images[start : start + batch_size])).permute(0, 3, 1, 2)


@torch.no_grad()
def encode(
    encoder: nn.Module,
    images: np.ndarray,
    transform: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int = 512,
) -> torch.Tensor:
    """Features (N, D) of images (N, H, W, 3) uint8 through ``transform`` then ``encoder`` in eval mode.

    A ``transform`` that returns several views of each image (a tuple, e.g. :class:`PatchBag`)
    gives the mean of their features: EMP-SSL's bag of features.
    """
    was_training = encoder.training
    encoder.eval()
    try:
        chunks = []
        for batch in iterate_batches(images, batch_size):
            views = transform(batch.to(device))
            if isinstance(views, (tuple, list)):
                chunks.append(sum(encoder(v).float() for v in views) / len(views))  # (B, D) mean over views
            else:
                chunks.append(encoder(views).float())
    finally:
        encoder.train(was_training)
    return torch.cat(chunks)


class PatchBag(nn.Module):
    """Several augmented views of each image, the same ones at every call (EMP-SSL's evaluation).

    [0] Tong, Chen, Ma, LeCun, 2023, https://arxiv.org/abs/2304.03977: a test image's embedding
    is the mean over its patches' embeddings ("bag of features"). The views of a batch are drawn
    from a generator seeded by ``seed`` and the batch's pixel sum, so repeated evaluations of a
    run see the same patches.

    Args:
        augment: a multi-view augmentation (``TwoViewAugment`` of as many global crops as views).
        seed: the evaluation seed.
    """

    def __init__(self, augment: nn.Module, seed: int = 0) -> None:
        super().__init__()
        self.augment = augment
        self.seed = seed

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(self.seed + int(images.sum()) % 2**31)
        return self.augment(images, generator=generator)


def raw_pixels(images: np.ndarray) -> torch.Tensor:
    """Flattened pixels (N, H*W*3) in [0, 1]: the no-learning baseline."""
    return torch.from_numpy(np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0)



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


@torch.no_grad()
def encode_views(
    backbone: nn.Module,
    projector: nn.Module,
    images: np.ndarray,
    augment: nn.Module,
    device: torch.device,
    batch_size: int = 512,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features and projector embeddings of V augmented views of each image, in eval mode.

    Batch k of images is augmented with a generator seeded by ``seed + k``: the same views at every
    call, whatever the network. Used by the label-free metrics that need several views of one image
    (LiDAR).

    Args:
        backbone: images (B, 3, h, w) -> features (B, D).
        projector: features (B, D) -> embeddings (B, d).
        images: uint8 (N, H, W, 3).
        augment: images (B, 3, H, W) -> a tuple of V views.
        device: where the networks are.
        batch_size: images per pass.
        seed: the views' seed.

    Returns:
        (features (V, N, D), embeddings (V, N, d)), float32 on the CPU.
    """
    modes = backbone.training, projector.training
    backbone.eval()
    projector.eval()
    try:
        features, embeddings = [], []
        for k, batch in enumerate(iterate_batches(images, batch_size)):
            views = augment(batch.to(device), generator=torch.Generator().manual_seed(seed + k))
            h = torch.stack([backbone(v).float() for v in views])  # (V, B, D)
            z = torch.stack([projector(h_v).float() for h_v in h])  # (V, B, d)
            features.append(h.cpu())
            embeddings.append(z.cpu())
    finally:
        backbone.train(modes[0])
        projector.train(modes[1])
    return torch.cat(features, dim=1), torch.cat(embeddings, dim=1)


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



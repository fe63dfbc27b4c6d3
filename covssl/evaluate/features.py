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
    """Features (N, D) of images (N, H, W, 3) uint8 through ``transform`` then ``encoder`` in eval mode."""
    was_training = encoder.training
    encoder.eval()
    try:
        chunks = [encoder(transform(batch.to(device))).float() for batch in iterate_batches(images, batch_size)]
    finally:
        encoder.train(was_training)
    return torch.cat(chunks)


def raw_pixels(images: np.ndarray) -> torch.Tensor:
    """Flattened pixels (N, H*W*3) in [0, 1]: the no-learning baseline."""
    return torch.from_numpy(np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0)



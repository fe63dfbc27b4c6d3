"""Projector (expander) and predictor MLPs.

    Projector: z = W_L( ReLU(BN(W_{L-1} ... ReLU(BN(W_1 h)))) )   [then BN without affine]
    Predictor: p = W_2 ReLU(BN(W_1 z))                              (bottleneck MLP)

Linear layers followed by a BatchNorm have no bias: BN subtracts the batch mean, which cancels
any bias exactly (in train and eval mode), so it would only be a dead parameter.

The widths each method's paper uses are in :mod:`covssl.methods.catalog`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _check_dim(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def _check_features(x: object, dim: int) -> torch.Tensor:
    # Shape only: a finiteness check would force a device sync on every forward pass.
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != dim:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected a tensor of shape (batch, {dim}), got {got}")
    return x


class Projector(nn.Module):
    """MLP head: [Linear-BN-ReLU] per hidden dim, then a final Linear (optionally BN).

    z = W_L ReLU(BN(W_{L-1} ... ReLU(BN(W_1 h)))) (+ b_L) [-> BN_no_affine(z)]

    Args:
        in_dim: backbone feature dimension.
        hidden_dims: widths of the hidden layers; empty gives a single linear map.
        out_dim: embedding dimension d.
        batch_norm: BatchNorm1d after each hidden Linear (which then has no bias).
        last_batch_norm: non-affine BatchNorm1d on the output, as in SimSiam.
        last_bias: bias on the output Linear.

    Examples:
        >>> proj = Projector(64, (128, 128), 32)
        >>> proj(torch.randn(8, 64)).shape
        torch.Size([8, 32])
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[int],
        out_dim: int,
        batch_norm: bool = True,
        last_batch_norm: bool = False,
        last_bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_dim = _check_dim(in_dim, "in_dim")
        self.out_dim = _check_dim(out_dim, "out_dim")
        self.hidden_dims = tuple(_check_dim(h, f"hidden_dims[{i}]") for i, h in enumerate(hidden_dims))
        layers: list[nn.Module] = []
        prev = in_dim
        for h in self.hidden_dims:
            layers.append(nn.Linear(prev, h, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU(inplace=True))
            prev = h
        layers.append(nn.Linear(prev, out_dim, bias=last_bias))
        if last_batch_norm:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (batch, in_dim) -> embeddings (batch, out_dim)."""
        return self.layers(_check_features(x, self.in_dim))


class Predictor(nn.Module):
    """SimSiam/BYOL bottleneck predictor: p = W_2 ReLU(BN(W_1 z)) + b_2.

    Args:
        dim: embedding dimension (input and output).
        hidden_dim: bottleneck width (SimSiam 512 for dim 2048; BYOL 4096 for dim 256).

    Examples:
        >>> pred = Predictor(32, 8)
        >>> pred(torch.randn(4, 32)).shape
        torch.Size([4, 32])
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.in_dim = self.out_dim = _check_dim(dim, "dim")
        self.hidden_dim = _check_dim(hidden_dim, "hidden_dim")
        self.layers = nn.Sequential(
            nn.Linear(dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, dim),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Embeddings (batch, dim) -> predictions (batch, dim)."""
        return self.layers(_check_features(z, self.in_dim))

"""Projector (expander) and predictor MLPs, with each paper's dimensions as presets.

    Projector: z = W_L( ReLU(BN(W_{L-1} ... ReLU(BN(W_1 h)))) )   [then BN without affine]
    Predictor: p = W_2 ReLU(BN(W_1 z))                              (bottleneck MLP)

Linear layers followed by a BatchNorm have no bias: BN subtracts the batch mean, which cancels
any bias exactly (in train and eval mode), so it would only be a dead parameter.

Paper settings (hidden dims -> output dim; "BN out" = non-affine BN on the output):

    method         ImageNet (paper)                    CIFAR (paper, or solo-learn [6])
    vicreg [0]     8192, 8192 -> 8192                  2048, 2048 -> 2048 [6]
    barlow [1]     8192, 8192 -> 8192                  2048, 2048 -> 2048 [6]
    simclr [2]     2048 -> 128 (hidden BN: code)       2048 -> 128 (appendix B.9)
    simsiam [3]    2048, 2048 -> 2048, BN out          2048 -> 2048, BN out (2 layers, appendix D)
    byol [4]       4096 -> 256                         4096 -> 256 [6]
    corinfomax [5] -                                   2048, 2048 -> 64
    coding_rate    2048, 2048 -> 256                   2048, 2048 -> 256

    Predictors: SimSiam 2048 -> 512 -> 2048, BYOL 256 -> 4096 -> 256. coding_rate (SimDINO [7])
    takes the DINO head's widths; DINO's head uses GELU without BN, ours is Linear-BN-ReLU.

[0] Bardes, Ponce, LeCun, 2021, VICReg, https://arxiv.org/abs/2105.04906
[1] Zbontar, Jing, Misra, LeCun, Deny, 2021, Barlow Twins, https://arxiv.org/abs/2103.03230
[2] Chen, Kornblith, Norouzi, Hinton, 2020, SimCLR, https://arxiv.org/abs/2002.05709
[3] Chen, He, 2021, SimSiam, https://arxiv.org/abs/2011.10566
[4] Grill et al., 2020, BYOL, https://arxiv.org/abs/2006.07733
[5] Ozsoy, Hamidi, Erdogan, 2022, CorInfoMax, https://arxiv.org/abs/2209.07999
[6] da Costa, Fini, Nabi, Sebe, Ricci, 2022, solo-learn, https://arxiv.org/abs/2108.01775
[7] Wu et al., 2025, SimDINO, https://arxiv.org/abs/2502.10385
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

_SCALES = ("cifar", "imagenet")
_ALIASES = {"barlow": "barlow_twins", "barlowtwins": "barlow_twins", "simdino": "coding_rate"}

# (method, scale) -> Projector keyword arguments (in_dim excluded); see the module docstring.
_PROJECTORS: dict[tuple[str, str], dict[str, Any]] = {
    ("vicreg", "cifar"): dict(hidden_dims=(2048, 2048), out_dim=2048, last_bias=False),
    ("vicreg", "imagenet"): dict(hidden_dims=(8192, 8192), out_dim=8192, last_bias=False),
    ("barlow_twins", "cifar"): dict(hidden_dims=(2048, 2048), out_dim=2048, last_bias=False),
    ("barlow_twins", "imagenet"): dict(hidden_dims=(8192, 8192), out_dim=8192, last_bias=False),
    # g(h) = W2 ReLU(W1 h) in the paper: no output bias.
    ("simclr", "cifar"): dict(hidden_dims=(2048,), out_dim=128, last_bias=False),
    ("simclr", "imagenet"): dict(hidden_dims=(2048,), out_dim=128, last_bias=False),
    # The output BN is why SimSiam's output fc has no (trainable) bias.
    ("simsiam", "cifar"): dict(hidden_dims=(2048,), out_dim=2048, last_batch_norm=True, last_bias=False),
    ("simsiam", "imagenet"): dict(hidden_dims=(2048, 2048), out_dim=2048, last_batch_norm=True, last_bias=False),
    ("byol", "cifar"): dict(hidden_dims=(4096,), out_dim=256),
    ("byol", "imagenet"): dict(hidden_dims=(4096,), out_dim=256),
    ("corinfomax", "cifar"): dict(hidden_dims=(2048, 2048), out_dim=64),
    ("coding_rate", "cifar"): dict(hidden_dims=(2048, 2048), out_dim=256),
    ("coding_rate", "imagenet"): dict(hidden_dims=(2048, 2048), out_dim=256),
}

# method -> (dim, hidden_dim) of the predictor; the same on CIFAR and ImageNet in the papers.
_PREDICTORS: dict[str, tuple[int, int]] = {"simsiam": (2048, 512), "byol": (256, 4096)}


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


def _method_key(method: object) -> str:
    if not isinstance(method, str):
        raise ValueError(f"method: expected a string, got {type(method).__name__}")
    key = method.lower().replace("-", "_")
    return _ALIASES.get(key, key)


def list_projector_presets() -> list[tuple[str, str]]:
    """Sorted (method, scale) pairs accepted by :func:`projector_preset`."""
    return sorted(_PROJECTORS)


def projector_preset(method: str, in_dim: int, scale: str = "cifar") -> Projector:
    """The projector of a method's paper (see the module docstring for dims and sources).

    Args:
        method: "vicreg", "barlow_twins" ("barlow"), "simclr", "simsiam", "byol",
            "corinfomax" or "coding_rate" ("simdino").
        in_dim: backbone feature dimension (``backbone.out_dim``).
        scale: "cifar" or "imagenet".

    Returns:
        A freshly initialized :class:`Projector`.

    Examples:
        >>> projector_preset("simclr", 512).out_dim
        128
    """
    if scale not in _SCALES:
        raise ValueError(f"scale: expected one of {_SCALES}, got {scale!r}")
    key = (_method_key(method), scale)
    if key not in _PROJECTORS:
        raise ValueError(
            f"method: no {scale!r} projector preset for {method!r}; expected one of {list_projector_presets()}"
        )
    return Projector(in_dim, **_PROJECTORS[key])


def predictor_preset(method: str) -> Predictor:
    """The predictor of SimSiam (2048 -> 512 -> 2048) or BYOL (256 -> 4096 -> 256).

    Examples:
        >>> predictor_preset("simsiam").hidden_dim
        512
    """
    key = _method_key(method)
    if key not in _PREDICTORS:
        raise ValueError(f"method: expected one of {sorted(_PREDICTORS)}, got {method!r}")
    return Predictor(*_PREDICTORS[key])

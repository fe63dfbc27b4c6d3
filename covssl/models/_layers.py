"""Small building blocks shared by the backbones: image checks, convolutions, initialization."""

from __future__ import annotations

import math

import torch
from torch import nn

from covssl._checks import check_positive


def check_images(x: object, in_channels: int, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a floating tensor of images, shape (batch, in_channels, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(
            f"{name}: expected a torch.Tensor of shape (batch, {in_channels}, H, W), got {type(x).__name__}"
        )
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{name}: expected shape (batch, {in_channels}, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point dtype, got {x.dtype}")
    return x


def check_channels(value: object, name: str) -> int:
    """Check a channel count: a Python int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def scaled_channels(base: int, width: object) -> int:
    """round(base * width), at least 1: the channel multiplier of the small CPU variants."""
    w = check_positive(width, "width")
    if not math.isfinite(base * w):
        raise ValueError(f"width: expected a finite channel multiplier, got {width!r}")
    return max(1, int(round(base * w)))


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows and has its own shift)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (projection shortcuts and bottleneck reductions)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


def init_conv_bn(module: nn.Module) -> None:
    """He et al. 2015 normal init (fan_out, ReLU gain) for convs; BN gamma = 1, beta = 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

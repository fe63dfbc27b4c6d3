"""ResNet-18/34/50 backbones without classifier, with a CIFAR stem and a width multiplier.

[0] He, Zhang, Ren, Sun, 2016, "Deep Residual Learning for Image Recognition",
    https://arxiv.org/abs/1512.03385

Architecture (paper, Table 1), with c = round(64 * width):

    stem     ImageNet: 7x7 conv c, stride 2 - BN - ReLU - 3x3 max-pool stride 2   (H/4)
             CIFAR:    3x3 conv c, stride 1 - BN - ReLU, no max-pool              (H)
    stage k  (k = 1..4) n_k residual blocks with c * 2^(k-1) channels (x4 at the bottleneck
             output); the first block of stages 2-4 has stride 2
    head     global average pooling -> features (batch, out_dim), no fc

    BasicBlock (ResNet-18/34, n = 2,2,2,2 / 3,4,6,3):
        y = ReLU(x' + BN(conv3x3(ReLU(BN(conv3x3_s(x))))))
    Bottleneck (ResNet-50, n = 3,4,6,3), expansion 4:
        y = ReLU(x' + BN(conv1x1_4p(ReLU(BN(conv3x3_s(ReLU(BN(conv1x1_p(x)))))))))
    x' = x when the shape is unchanged, else BN(conv1x1_s(x)) (the paper's projection
    shortcut, option B).

The bottleneck puts its stride on the 3x3 convolution ("ResNet v1.5", as in the torchvision
model used by the SSL papers) rather than on the first 1x1 as in the original Caffe model:
same parameter count, slightly better accuracy. The CIFAR stem is the one SimCLR (Chen et al. 2020,
arXiv 2002.05709, appendix B.9) and the SSL papers after it use on 32x32 images: stage 1 keeps
the full 32x32 resolution.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from covssl.models._layers import check_channels, check_images, conv1x1, conv3x3, init_conv_bn, scaled_channels
from covssl.models.registry import register_backbone


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity or projection shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_ch, out_ch, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a shortcut (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_ch, out_ch, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """Identity when the shape is kept, else the 1x1 projection + BN (paper's option B)."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))


class ResNet(nn.Module):
    """ResNet trunk + global average pooling; features (batch, out_dim), no classifier.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: number of blocks in each of the 4 stages, e.g. (2, 2, 2, 2) for ResNet-18.
        width: channel multiplier, > 0; the stem has round(64 * width) channels (>= 1).
        cifar_stem: True for the 3x3 stride-1 stem without max-pool (32x32 inputs), False for
            the ImageNet 7x7 stride-2 stem + 3x3 stride-2 max-pool.
        zero_init_residual: start every residual branch at zero (last BN gamma = 0), so each
            block is the identity at init (Goyal et al. 2017, arXiv 1706.02677).
        in_channels: channels of the input images.

    Examples:
        >>> net = ResNet(BasicBlock, (2, 2, 2, 2), width=0.125)
        >>> net(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 64])
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        width: float = 1.0,
        cifar_stem: bool = True,
        zero_init_residual: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"layers: expected 4 integers >= 1, got {tuple(layers)!r}")
        self.in_channels = check_channels(in_channels, "in_channels")
        base = scaled_channels(64, width)
        if cifar_stem:
            self.conv1: nn.Conv2d = conv3x3(in_channels, base)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, base, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)

        stages = []
        in_ch = base
        for k, n_blocks in enumerate(layers):
            planes = base * 2**k
            stride = 1 if k == 0 else 2
            blocks = []
            for i in range(n_blocks):
                blocks.append(block(in_ch, planes, stride if i == 0 else 1))
                in_ch = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim: int = in_ch

        init_conv_bn(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last stage, (batch, out_dim, H', W')."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (batch, in_channels, H, W) -> pooled features (batch, out_dim)."""
        check_images(x, self.in_channels)
        return torch.flatten(self.avgpool(self.forward_features(x)), 1)  # (B, C, 1, 1) -> (B, C)


@register_backbone("resnet18")
def resnet18(
    width: float = 1.0, cifar_stem: bool = True, zero_init_residual: bool = False, in_channels: int = 3
) -> ResNet:
    """ResNet-18: BasicBlock x (2, 2, 2, 2); out_dim = 8 * round(64 * width) (512 at width 1)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), width, cifar_stem, zero_init_residual, in_channels)


@register_backbone("resnet34")
def resnet34(
    width: float = 1.0, cifar_stem: bool = True, zero_init_residual: bool = False, in_channels: int = 3
) -> ResNet:
    """ResNet-34: BasicBlock x (3, 4, 6, 3); out_dim = 8 * round(64 * width) (512 at width 1)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), width, cifar_stem, zero_init_residual, in_channels)


@register_backbone("resnet50")
def resnet50(
    width: float = 1.0, cifar_stem: bool = True, zero_init_residual: bool = False, in_channels: int = 3
) -> ResNet:
    """ResNet-50: Bottleneck x (3, 4, 6, 3); out_dim = 32 * round(64 * width) (2048 at width 1)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), width, cifar_stem, zero_init_residual, in_channels)

"""A tiny conv-BN-ReLU backbone for fast tests and CPU smoke runs.

Three 3x3 conv-BN-ReLU layers (strides 1, 2, 2) and global average pooling:

    x (B, C_in, H, W) -> c1 (H) -> c2 (H/2) -> c3 (H/4) -> mean over space -> (B, c3)

with (c1, c2, c3) = round((32, 64, 128) * width). Not from a paper: it only has to map
images to features quickly so that the training loop and the objectives can be tested.
"""

from __future__ import annotations

import torch
from torch import nn

from covssl.models._layers import check_channels, check_images, conv3x3, init_conv_bn, scaled_channels
from covssl.models.registry import register_backbone


class SmallConvNet(nn.Module):
    """Three conv-BN-ReLU layers + global average pooling; features (batch, out_dim).

    Args:
        width: channel multiplier, > 0; channels are round((32, 64, 128) * width), each >= 1.
        in_channels: channels of the input images.

    Examples:
        >>> net = SmallConvNet(width=0.25)
        >>> net(torch.randn(4, 3, 16, 16)).shape
        torch.Size([4, 32])
    """

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = check_channels(in_channels, "in_channels")
        channels = [scaled_channels(c, width) for c in (32, 64, 128)]
        layers: list[nn.Module] = []
        in_ch = in_channels
        for out_ch, stride in zip(channels, (1, 2, 2)):
            layers += [conv3x3(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.out_dim: int = in_ch
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (batch, in_channels, H, W) -> pooled features (batch, out_dim)."""
        check_images(x, self.in_channels)
        return self.features(x).mean(dim=(2, 3))  # (B, C, H', W') -> (B, C)


@register_backbone("small_convnet")
def small_convnet(width: float = 1.0, in_channels: int = 3) -> SmallConvNet:
    """The tiny test backbone; out_dim = round(128 * width)."""
    return SmallConvNet(width, in_channels)

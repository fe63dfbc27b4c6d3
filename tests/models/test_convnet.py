"""The tiny test backbone: channel widths, resolution, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from covssl.models.convnet import SmallConvNet, small_convnet


@pytest.mark.parametrize(("width", "channels"), [(1.0, (32, 64, 128)), (0.25, (8, 16, 32)), (0.01, (1, 1, 1))])
def test_channels_follow_width(width: float, channels: tuple[int, int, int]) -> None:
    net = small_convnet(width=width)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert tuple(c.out_channels for c in convs) == channels
    assert net.out_dim == channels[-1]
    # conv weights (no bias) + BN gamma/beta, computed from the architecture.
    c1, c2, c3 = channels
    expected = 9 * (3 * c1 + c1 * c2 + c2 * c3) + 2 * (c1 + c2 + c3)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_features_are_the_spatial_mean_of_the_last_map() -> None:
    torch.manual_seed(0)
    net = SmallConvNet(width=0.25).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        fmap = net.features(x)
        out = net(x)
    assert fmap.shape == (3, 32, 4, 4)  # strides 1, 2, 2
    torch.testing.assert_close(out, fmap.double().mean(dim=(2, 3)).float())


def test_errors() -> None:
    with pytest.raises(ValueError, match="width"):
        small_convnet(width=0)
    with pytest.raises(ValueError, match="in_channels"):
        small_convnet(in_channels=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x"):
        small_convnet()(torch.randn(2, 3, 8))

"""ResNet-18/34/50: parameter counts derived from the paper's Table 1, stems, init, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from covssl.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50

STAGES = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
FACTORIES = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def conv_params(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out  # no bias: a BN follows every convolution


def bn_params(c: int) -> int:
    return 2 * c  # gamma and beta


def expected_params(name: str, width: float, cifar_stem: bool) -> int:
    """Count of He et al. 2016 Table 1 without fc, projection shortcuts (option B) with BN."""
    kind, layers = STAGES[name]
    c = max(1, round(64 * width))
    total = conv_params(3 if cifar_stem else 7, 3, c) + bn_params(c)
    c_in = c
    for k, n in enumerate(layers):
        p = c * 2**k
        for i in range(n):
            stride = 2 if k > 0 and i == 0 else 1
            if kind == "basic":
                c_out = p
                total += conv_params(3, c_in, p) + bn_params(p) + conv_params(3, p, p) + bn_params(p)
            else:
                c_out = 4 * p
                total += conv_params(1, c_in, p) + bn_params(p)
                total += conv_params(3, p, p) + bn_params(p)
                total += conv_params(1, p, c_out) + bn_params(c_out)
            if stride != 1 or c_in != c_out:
                total += conv_params(1, c_in, c_out) + bn_params(c_out)
            c_in = c_out
    return total


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_resnet18_cifar_has_11_168_832_params() -> None:
    # 1,728 stem + 128 BN + 147,968 + 525,568 + 2,099,712 + 8,393,728 (stages 1-4).
    assert expected_params("resnet18", 1.0, True) == 11_168_832
    assert n_params(resnet18()) == 11_168_832


@pytest.mark.parametrize(
    ("name", "torchvision_total"),
    [("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032)],
)
def test_imagenet_stem_matches_published_counts_minus_fc(name: str, torchvision_total: int) -> None:
    # Published ImageNet totals include the 1000-way fc: out_dim * 1000 weights + 1000 biases.
    net = FACTORIES[name](cifar_stem=False)
    fc = net.out_dim * 1000 + 1000
    assert n_params(net) == torchvision_total - fc == expected_params(name, 1.0, False)


@pytest.mark.parametrize("name", sorted(STAGES))
@pytest.mark.parametrize("width", [0.125, 0.25, 0.5])
@pytest.mark.parametrize("cifar_stem", [True, False])
def test_width_scaling_param_count(name: str, width: float, cifar_stem: bool) -> None:
    net = FACTORIES[name](width=width, cifar_stem=cifar_stem)
    assert n_params(net) == expected_params(name, width, cifar_stem)
    expansion = 4 if name == "resnet50" else 1
    assert net.out_dim == 8 * round(64 * width) * expansion


def test_width_scales_params_quadratically() -> None:
    # Convolutions dominate and scale as width^2; BN and the stem's 3 input channels are linear.
    ratio = n_params(resnet18(width=0.5)) / n_params(resnet18(width=0.25))
    assert 3.9 < ratio < 4.0


def test_tiny_width_keeps_at_least_one_channel() -> None:
    net = resnet18(width=0.001)
    assert net.conv1.out_channels == 1
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 8)


def _stage_shapes(net: ResNet, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    stages = (net.layer1, net.layer2, net.layer3, net.layer4)
    hooks = [m.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape))) for m in stages]
    net(x)
    for h in hooks:
        h.remove()
    return shapes


def test_cifar_stem_keeps_32x32_in_first_stage() -> None:
    net = resnet18(width=0.125).eval()
    shapes = _stage_shapes(net, torch.randn(2, 3, 32, 32))
    assert [s[2:] for s in shapes] == [(32, 32), (16, 16), (8, 8), (4, 4)]
    assert [s[1] for s in shapes] == [8, 16, 32, 64]
    assert isinstance(net.maxpool, nn.Identity) and net.conv1.stride == (1, 1)


def test_imagenet_stem_downsamples_by_4() -> None:
    net = resnet50(width=0.125, cifar_stem=False).eval()
    shapes = _stage_shapes(net, torch.randn(2, 3, 32, 32))
    assert [s[2:] for s in shapes] == [(8, 8), (4, 4), (2, 2), (1, 1)]
    assert [s[1] for s in shapes] == [32, 64, 128, 256]


def test_bottleneck_strides_on_the_3x3_conv() -> None:
    block = resnet50(width=0.125).layer2[0]
    assert isinstance(block, Bottleneck)
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.shortcut[0].stride == (2, 2)


def test_zero_init_residual_makes_blocks_identity() -> None:
    torch.manual_seed(0)
    for factory in (resnet18, resnet50):
        net = factory(width=0.125, zero_init_residual=True).eval()
        default = factory(width=0.125)
        blocks = [m for m in net.modules() if isinstance(m, (BasicBlock, Bottleneck))]
        assert blocks and all(torch.all(b.last_bn().weight == 0) for b in blocks)
        assert all(
            torch.all(b.last_bn().weight == 1) for b in default.modules() if isinstance(b, (BasicBlock, Bottleneck))
        )
        # A block with an identity shortcut computes ReLU(0 + x) = x on non-negative inputs.
        block = net.layer1[1]
        x = torch.rand(2, block.last_bn().num_features, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(block(x), x)


def test_conv_init_is_he_fan_out() -> None:
    torch.manual_seed(0)
    conv = resnet18(width=0.5).layer4[0].conv1  # 128 -> 256, 3x3: fan_out = 2 fan_in
    assert conv.in_channels * 2 == conv.out_channels
    expected_std = math.sqrt(2.0 / (conv.out_channels * 9))
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.03


def test_grayscale_input_channels() -> None:
    net = resnet18(width=0.125, in_channels=1)
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 64)


@pytest.mark.parametrize("width", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_width_raises(width: object) -> None:
    with pytest.raises(ValueError, match="width"):
        resnet18(width=width)  # type: ignore[arg-type]


def test_bad_layers_and_channels_raise() -> None:
    with pytest.raises(ValueError, match="layers"):
        ResNet(BasicBlock, (2, 2, 2))
    with pytest.raises(ValueError, match="layers"):
        ResNet(BasicBlock, (2, 0, 2, 2))
    with pytest.raises(ValueError, match="in_channels"):
        resnet18(in_channels=0)
    with pytest.raises(ValueError, match="dtype"):
        resnet18(width=0.125)(torch.zeros(2, 3, 8, 8, dtype=torch.long))

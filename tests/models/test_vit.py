"""Vision Transformer: shapes at several resolutions, position interpolation, parameter counts
from the architecture, attention against its formula, init, stochastic depth, errors, registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from covssl.models import VisionTransformer, create_backbone, list_backbones, vit_small, vit_tiny
from covssl.models.vit import Attention, DropPath


def small_vit(**kwargs: object) -> VisionTransformer:
    """A 2-block ViT (D = 24, 3 heads) so the behaviour tests stay fast."""
    args: dict = {"image_size": 32, "patch_size": 4, "embed_dim": 24, "depth": 2, "num_heads": 3}
    args.update(kwargs)
    return VisionTransformer(**args)


def expected_params(dim: int, depth: int, image_size: int, patch: int, mlp_ratio: float = 4.0, c_in: int = 3) -> int:
    """Count from the architecture: patch conv + CLS + positions + blocks + final LN."""
    hidden = int(dim * mlp_ratio)
    tokens = 1 + (image_size // patch) ** 2
    patch_embed = patch * patch * c_in * dim + dim
    block = 2 * dim + (3 * dim * dim + 3 * dim) + (dim * dim + dim)  # LN, qkv, proj
    block += 2 * dim + (dim * hidden + hidden) + (hidden * dim + dim)  # LN, fc1, fc2
    return patch_embed + dim + tokens * dim + depth * block + 2 * dim


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(("factory", "published"), [(vit_tiny, 5_717_416), (vit_small, 22_050_664)])
def test_deit_224_counts_match_published_minus_head(factory: object, published: int) -> None:
    # DeiT-Ti/S at 224 px, patch 16 (Touvron et al. 2021): totals include the D x 1000 + 1000 head.
    net = factory(image_size=224, patch_size=16)  # type: ignore[operator]
    head = net.out_dim * 1000 + 1000
    assert n_params(net) == published - head == expected_params(net.out_dim, 12, 224, 16)


@pytest.mark.parametrize("factory", [vit_tiny, vit_small])
@pytest.mark.parametrize(("width", "patch_size"), [(0.125, 2), (0.25, 4), (0.25, 8), (0.5, 4)])
def test_param_count_matches_formula(factory: object, width: float, patch_size: int) -> None:
    net = factory(width=width, patch_size=patch_size)  # type: ignore[operator]
    heads = 3 if factory is vit_tiny else 6
    assert net.out_dim == heads * round(64 * width)
    assert n_params(net) == expected_params(net.out_dim, 12, 32, patch_size)


def test_width_rounds_to_a_multiple_of_heads() -> None:
    assert vit_tiny(width=0.25).out_dim == 48
    assert vit_small(width=0.25).out_dim == 96
    assert vit_tiny(width=0.3).out_dim == 3 * 19  # 192 * 0.3 = 57.6 -> head dim round(19.2) = 19
    assert vit_tiny(width=0.001).out_dim == 3  # head dim >= 1
    for width in (0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="width"):
            vit_tiny(width=width)  # type: ignore[arg-type]


def test_factory_defaults_are_cifar_patch_4() -> None:
    net = vit_tiny(width=0.125)
    assert net.patch_embed.kernel_size == net.patch_embed.stride == (4, 4)
    assert net.pos_embed.shape == (1, 1 + 8 * 8, 24) and len(net.blocks) == 12


@pytest.mark.parametrize(("size", "tokens"), [(32, 64), (16, 16), (48, 144)])
def test_forward_shapes_at_several_resolutions(size: int, tokens: int) -> None:
    torch.manual_seed(0)
    net = small_vit()
    x = torch.randn(3, 3, size, size)
    assert net(x).shape == (3, 24)
    assert net.forward_tokens(x).shape == (3, 1 + tokens, 24)


def test_forward_at_96_px_with_image_size_96() -> None:
    net = small_vit(image_size=96, patch_size=8)
    assert net.pos_embed.shape == (1, 1 + 12 * 12, 24)
    assert net(torch.randn(2, 3, 96, 96)).shape == (2, 24)
    assert net(torch.randn(2, 3, 32, 48)).shape == (2, 24)  # non-square grid 4 x 6


def test_pos_embed_at_native_size_is_the_stored_parameter() -> None:
    net = small_vit()
    assert net.interpolate_pos_embed(8, 8) is net.pos_embed


def test_pos_embed_interpolation() -> None:
    torch.manual_seed(0)
    net = small_vit()
    small = net.interpolate_pos_embed(4, 4)
    assert small.shape == (1, 1 + 16, 24)
    torch.testing.assert_close(small[:, 0], net.pos_embed[:, 0])  # CLS position unchanged
    # Bicubic weights sum to 1: a spatially constant embedding stays constant at any grid.
    with torch.no_grad():
        net.pos_embed[:, 1:] = torch.linspace(-1, 1, 24)
    torch.testing.assert_close(net.interpolate_pos_embed(5, 3)[:, 1:], net.pos_embed[:, 1:2].expand(1, 15, 24))


def test_local_crop_gradient_reaches_every_position() -> None:
    torch.manual_seed(0)
    net = small_vit()
    net(torch.randn(2, 3, 16, 16)).sum().backward()
    grad = net.pos_embed.grad[0]  # (1 + 64, D): bicubic 8 -> 4 touches every stored position
    assert torch.isfinite(grad).all() and (grad.abs().sum(dim=1) > 0).all()


@pytest.mark.parametrize("size", [32, 16])
def test_backward_gives_finite_grads_for_all_params(size: int) -> None:
    torch.manual_seed(0)
    net = small_vit(drop_path=0.1)
    out = net(torch.randn(4, 3, size, size))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("scale", [1e4, 1e6])
def test_large_inputs_give_finite_features(scale: float) -> None:
    torch.manual_seed(0)
    net = small_vit()
    x = torch.randn(4, 3, 32, 32) * scale
    out = net(x)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_deterministic_under_a_seed() -> None:
    x = torch.randn(2, 3, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        net = small_vit(drop_path=0.2).train()
        outs.append(net(x))  # includes the stochastic-depth masks
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.manual_seed(124)
    assert not torch.equal(small_vit().pos_embed, net.pos_embed)


def test_attention_matches_its_formula() -> None:
    torch.manual_seed(0)
    attn = Attention(12, num_heads=3)
    x = torch.randn(2, 5, 12)
    q, k, v = attn.qkv(x).chunk(3, dim=-1)  # (B, N, D) each
    split = lambda t: t.reshape(2, 5, 3, 4).transpose(1, 2)  # noqa: E731  (B, h, N, d/h)
    weights = torch.softmax(split(q) @ split(k).transpose(-2, -1) / math.sqrt(4), dim=-1)
    expected = attn.proj((weights @ split(v)).transpose(1, 2).reshape(2, 5, 12))
    torch.testing.assert_close(attn(x), expected)


def test_samples_are_independent_and_train_equals_eval_without_drop_path() -> None:
    # No BatchNorm: features of a sample never depend on the rest of the batch.
    torch.manual_seed(0)
    net = small_vit()
    x = torch.randn(6, 3, 32, 32)
    full = net.train()(x)
    torch.testing.assert_close(net(x[:2]), full[:2], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), full, rtol=1e-4, atol=1e-5)


def test_drop_path_is_random_in_training_only() -> None:
    torch.manual_seed(0)
    net = small_vit(drop_path=0.5)
    rates = [b.drop_path.p for b in net.blocks]
    assert rates == [0.0, 0.5]  # linear in depth (DeiT), last block = drop_path
    x = torch.randn(8, 3, 16, 16)
    net.train()
    assert not torch.allclose(net(x), net(x))
    net.eval()
    torch.testing.assert_close(net(x), net(x), rtol=0, atol=0)
    kept = DropPath(0.25).train()(torch.ones(4000, 1, 1))
    assert (torch.isclose(kept, torch.tensor(0.0)) | torch.isclose(kept, torch.tensor(4 / 3))).all()
    assert abs(kept.mean().item() - 1) < 0.05


def test_init_follows_deit() -> None:
    torch.manual_seed(0)
    net = vit_tiny(width=0.5)
    for m in net.modules():
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0) and m.eps == 1e-6
        elif isinstance(m, nn.Linear):
            assert torch.all(m.bias == 0) and m.weight.abs().max() <= 0.04
    fc1 = net.blocks[0].mlp[0].weight  # 96 x 384: std of N(0, 0.02) cut at 2 std = 0.0176
    assert abs(fc1.std().item() / 0.0176 - 1) < 0.03
    for p in (net.pos_embed, net.cls_token):
        assert p.abs().max() <= 0.04 and p.std() > 0.01
    assert net.no_weight_decay() == {"pos_embed", "cls_token"}


def test_bad_images_raise() -> None:
    net = small_vit()
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 3, H, W\)"):
        net(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 3, H, W\)"):
        net(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="divisible by patch_size=4, got 30x32"):
        net(torch.randn(2, 3, 30, 32))
    with pytest.raises(ValueError, match="dtype"):
        net(torch.zeros(2, 3, 32, 32, dtype=torch.long))
    assert small_vit(in_channels=1)(torch.randn(2, 1, 8, 8)).shape == (2, 24)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 30}, "image_size: expected a multiple of patch_size=4"),
        ({"embed_dim": 25}, "embed_dim: expected a multiple of num_heads=3"),
        ({"depth": 0}, "depth"),
        ({"num_heads": 0}, "num_heads"),
        ({"patch_size": 0}, "patch_size"),
        ({"drop_path": 1.0}, "drop_path"),
        ({"drop_path": -0.1}, "drop_path"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        small_vit(**kwargs)


def test_registry_builds_vits() -> None:
    assert {"vit_tiny", "vit_small"} <= set(list_backbones())
    assert list_backbones("vit_*") == ["vit_small", "vit_tiny"]
    net = create_backbone("vit_tiny", width=0.25)
    assert isinstance(net, VisionTransformer) and net.out_dim == 48
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 48)
    net = create_backbone("vit_small", width=0.125, image_size=64, patch_size=8, drop_path=0.1)
    assert net.out_dim == 48 and net.pos_embed.shape == (1, 65, 48)

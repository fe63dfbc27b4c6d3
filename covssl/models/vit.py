"""Vision Transformer (ViT-Tiny/Small) backbones without classifier, features = the CLS token.

[0] Dosovitskiy et al., 2020, "An Image is Worth 16x16 Words: Transformers for Image
    Recognition at Scale", https://arxiv.org/abs/2010.11929
[1] Touvron et al., 2021, "Training data-efficient image transformers & distillation through
    attention" (DeiT), https://arxiv.org/abs/2012.12877
[2] Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers" (DINO),
    https://arxiv.org/abs/2104.14294

Architecture ([0], eq. 1-4), with D = embed_dim, p = patch_size, N = (H/p) * (W/p) patches:

    tokens  z_0 = [cls; conv_pxp_stride_p(x) flattened] + E_pos        (B, 1 + N, D)
    block   z' = z + DropPath(MSA(LN(z)))                             (pre-norm)
            z  = z' + DropPath(MLP(LN(z')))    MLP = Linear(D, r*D) - GELU - Linear(r*D, D)
    output  LN(z_L)[:, 0]                                             (B, D), no head

    MSA(u) = concat_h softmax(q_h k_h^T / sqrt(D / heads)) v_h, then a Linear(D, D), with
    [q; k; v] = Linear(D, 3D)(u); computed by torch's scaled_dot_product_attention.

Sizes ([1], Table 1): ViT-Tiny D = 192, 3 heads; ViT-Small D = 384, 6 heads; both 12 blocks,
MLP ratio r = 4. On 32x32 images (CIFAR) the factories default to patch 4 (8x8 = 64 patches),
the usual CIFAR choice: patch 16 would leave 4 tokens. ``width`` scales the head dimension
(D / heads = 64) like the ResNets' channel multiplier: D = heads * round(64 * width), so
``vit_tiny(width=0.25)`` has D = 48 and ``vit_small(width=0.25)`` D = 96.

Other resolutions (multi-crop local views, progressive resizing): the patch position embeddings
live on the (image_size/p)^2 grid and are resized bicubically to the input's grid on every call,
as DINO [2] does; the CLS position is kept. They are not cached: a cache would go stale after
each optimizer step. Inputs must have H and W divisible by p (else a ValueError: crop or resize
first); H and W may differ.

Initialization as DeiT/DINO: truncated normal (std 0.02, cut at 2 std) for Linear weights,
the CLS token and the position embeddings, zero Linear biases, LayerNorm weight 1 and bias 0;
the patch convolution keeps PyTorch's default. LayerNorm eps is 1e-6 as in [1], [2].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from covssl._checks import check_non_negative, check_positive
from covssl.models._layers import check_channels, check_images, scaled_channels
from covssl.models.registry import register_backbone

_LN_EPS = 1e-6
_INIT_STD = 0.02


def _trunc_normal_(t: torch.Tensor, std: float = _INIT_STD) -> None:
    nn.init.trunc_normal_(t, mean=0.0, std=std, a=-2 * std, b=2 * std)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch per sample with probability ``p``
    and scale the kept ones by 1 / (1 - p) (Huang et al. 2016, arXiv 1603.09382); identity in eval."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # (B, 1, 1)
        return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention: fused qkv projection, SDPA, output projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)  # (B, N, 3, h, d/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, N, d/h)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d/h), scale 1 / sqrt(d/h)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """ViT encoder; features (batch, out_dim) = the final LayerNorm of the CLS token.

    Args:
        image_size: side of the square training images; sets the stored position grid
            (image_size / patch_size)^2. Other input sizes are handled by interpolation.
        patch_size: side of the square patches (kernel = stride of the patch convolution).
        embed_dim: token dimension D, a multiple of ``num_heads``; ``out_dim`` = D.
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden size / D (hidden = int(D * mlp_ratio)).
        drop_path: stochastic-depth rate of the last block, in [0, 1); block i uses
            drop_path * i / (depth - 1) (the DeiT schedule). 0 disables it.
        in_channels: channels of the input images.

    Examples:
        >>> net = VisionTransformer(image_size=32, patch_size=4, embed_dim=24, depth=2, num_heads=3)
        >>> net(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 24])
        >>> net(torch.randn(2, 3, 16, 16)).shape  # a local crop: position embeddings resized
        torch.Size([2, 24])
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.image_size = check_channels(image_size, "image_size")
        self.patch_size = check_channels(patch_size, "patch_size")
        check_channels(depth, "depth")
        check_channels(num_heads, "num_heads")
        check_channels(embed_dim, "embed_dim")
        self.in_channels = check_channels(in_channels, "in_channels")
        if image_size % patch_size:
            raise ValueError(f"image_size: expected a multiple of patch_size={patch_size}, got {image_size}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim: expected a multiple of num_heads={num_heads}, got {embed_dim}")
        mlp_ratio = check_positive(mlp_ratio, "mlp_ratio")
        if int(embed_dim * mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio: expected int(embed_dim * mlp_ratio) >= 1, got {mlp_ratio!r}")
        drop_path = check_non_negative(drop_path, "drop_path")
        if drop_path >= 1:
            raise ValueError(f"drop_path: expected a rate in [0, 1), got {drop_path!r}")

        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid**2, embed_dim))  # CLS + grid^2 patches
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.Sequential(*(Block(embed_dim, num_heads, mlp_ratio, r) for r in rates))
        self.norm = nn.LayerNorm(embed_dim, eps=_LN_EPS)
        self.out_dim: int = embed_dim
        self._init_weights()

    def _init_weights(self) -> None:
        _trunc_normal_(self.pos_embed)
        _trunc_normal_(self.cls_token)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                _trunc_normal_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def no_weight_decay(self) -> set[str]:
        """Parameters the timm/DeiT convention keeps out of weight decay (see param_groups)."""
        return {"pos_embed", "cls_token"}

    def interpolate_pos_embed(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Position embeddings for a (grid_h, grid_w) patch grid, (1, 1 + grid_h * grid_w, D).

        The stored parameter itself at the native grid; otherwise its patch part resized
        bicubically (align_corners=False, as DINO), with the CLS position unchanged.
        """
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]  # (1, 1, D), (1, g*g, D)
        d = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)  # (1, D, g, g)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        patch_pos = patch_pos.flatten(2).transpose(1, 2)  # (1, gh*gw, D), row-major like the patches
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Images (batch, in_channels, H, W) -> normalized tokens (batch, 1 + N, D), CLS first."""
        check_images(x, self.in_channels)
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"x: expected H and W divisible by patch_size={self.patch_size}, got {h}x{w} "
                "(crop or resize the images first)"
            )
        x = self.patch_embed(x)  # (B, D, H/p, W/p)
        grid_h, grid_w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, D)
        x = x + self.interpolate_pos_embed(grid_h, grid_w).to(x.dtype)
        return self.norm(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (batch, in_channels, H, W) -> CLS features (batch, out_dim)."""
        return self.forward_tokens(x)[:, 0]  # (B, 1 + N, D) -> (B, D)


def _vit(
    embed_dim: int,
    num_heads: int,
    width: float,
    image_size: int,
    patch_size: int,
    drop_path: float,
    in_channels: int,
) -> VisionTransformer:
    head_dim = scaled_channels(embed_dim // num_heads, width)  # round(64 * width), >= 1; checks width
    return VisionTransformer(
        image_size=image_size,
        patch_size=patch_size,
        embed_dim=head_dim * num_heads,
        depth=12,
        num_heads=num_heads,
        mlp_ratio=4.0,
        drop_path=drop_path,
        in_channels=in_channels,
    )


@register_backbone("vit_tiny")
def vit_tiny(
    width: float = 1.0, image_size: int = 32, patch_size: int = 4, drop_path: float = 0.0, in_channels: int = 3
) -> VisionTransformer:
    """ViT-Tiny: 12 blocks, 3 heads; out_dim = 3 * round(64 * width) (192 at width 1, 48 at 0.25)."""
    return _vit(192, 3, width, image_size, patch_size, drop_path, in_channels)


@register_backbone("vit_small")
def vit_small(
    width: float = 1.0, image_size: int = 32, patch_size: int = 4, drop_path: float = 0.0, in_channels: int = 3
) -> VisionTransformer:
    """ViT-Small: 12 blocks, 6 heads; out_dim = 6 * round(64 * width) (384 at width 1, 96 at 0.25)."""
    return _vit(384, 6, width, image_size, patch_size, drop_path, in_channels)

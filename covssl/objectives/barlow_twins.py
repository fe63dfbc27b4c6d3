"""Barlow Twins: push the cross-correlation of two views towards the identity.

[0] Zbontar, Jing, Misra, LeCun, Deny, 2021, "Barlow Twins: Self-Supervised Learning via
    Redundancy Reduction", https://arxiv.org/abs/2103.03230

Distributed training: the batch standardization and the cross-correlation use whatever batch
they are given; pass the globally gathered batch to match a single-process run on it.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``barlow_twins`` is global: the mean
and (biased) variance of the standardization and C = z1n^T z2n / N use the gathered batch, N global.
"""

from __future__ import annotations

import torch

from covssl._checks import check_non_negative, check_pair, check_positive
from covssl.linalg import Path, at_least_float32, offdiagonal_sq_sum, use_sample_side


def _standardize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """(z - mean) / sqrt(var + eps) per column, with the *biased* variance of BatchNorm1d(affine=False)."""
    zc = z - z.mean(dim=0, keepdim=True)  # (B, d)
    return zc / torch.sqrt(zc.square().mean(dim=0, keepdim=True) + eps)  # (B, d)


def barlow_twins_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    lambd: float = 0.0051,
    eps: float = 1e-5,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """Barlow Twins redundancy-reduction loss.

    zn = (z - mean_b z) / sqrt(Var_biased(z) + eps)     per dimension, for each view
    C  = Z1n^T Z2n / B                                  (d, d) cross-correlation
    on_diagonal  = sum_i (1 - C_ii)^2
    off_diagonal = sum_{i != j} C_ij^2
    loss         = on_diagonal + lambd * off_diagonal

    The standardization is BatchNorm1d(affine=False) in training mode, as in the official code
    (biased variance, eps = 1e-5). When B < d, C is never formed: the off-diagonal sum is
    ||C||_F^2 - sum_i C_ii^2 with ||Z1n^T Z2n||_F^2 = <Z1n Z1n^T, Z2n Z2n^T>_F, O(B^2 d).

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        lambd: weight of the off-diagonal (redundancy) term, >= 0 (paper: 0.0051).
        eps: variance stabilizer of the standardization, > 0.
        path: "auto" (B x B when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Dict with "loss" and the unweighted "on_diagonal" and "off_diagonal" terms, all scalar
        tensors. Identical whitened views give ~0; collapsed (constant) views give d, since
        every C_ii = 0.

    Examples:
        >>> z1, z2 = torch.randn(32, 64), torch.randn(32, 64)
        >>> out = barlow_twins_loss(z1, z2)
        >>> sorted(out)
        ['loss', 'off_diagonal', 'on_diagonal']
    """
    check_pair(z1, z2)
    lambd = check_non_negative(lambd, "lambd")
    eps = check_positive(eps, "eps")
    batch, dim = z1.shape
    use_sample_side(batch, dim, path)  # validates ``path`` before any work
    with torch.autocast(device_type=z1.device.type, enabled=False):
        # Float32 at least: the B x B path multiplies two Gram matrices entrywise, which overflows fp16.
        z1n = _standardize(at_least_float32(z1), eps)  # (B, d)
        z2n = _standardize(at_least_float32(z2), eps)  # (B, d)
        diagonal = (z1n * z2n).sum(dim=0) / batch  # (d,) = diag(C) without forming C
        on_diagonal = (1.0 - diagonal).square().sum()
        off_diagonal = offdiagonal_sq_sum(z1n, z2n, scale=1.0 / batch, path=path)
    return {"loss": on_diagonal + lambd * off_diagonal, "on_diagonal": on_diagonal, "off_diagonal": off_diagonal}

"""Spectral contrastive loss: a positive-pair inner product against squared inner products of negatives.

[0] HaoChen, Wei, Gaidon, Ma, 2021, "Provable Guarantees for Self-Supervised Deep Learning with
    Spectral Contrastive Loss" (NeurIPS 2021), https://arxiv.org/abs/2106.04156
    Official code: https://github.com/jhaochenz/spectral_contrastive_learning (``D`` in
    models/spectral.py)

The population loss of [0] is -2 E[f(x)^T f(x+)] + E[(f(x)^T f(x-))^2]; on a batch, with every
other sample of the other view as a negative, and as the official code computes it:

    z_k <- z_k * min(1, sqrt(mu) / ||z_k||)       rows longer than sqrt(mu) onto that sphere
    attraction = -2 mean_i <z1_i, z2_i> / mu
    repulsion  = sum_{i != j} <z1_i, z2_j>^2 / (B (B - 1) mu)
    loss       = attraction + repulsion

The rescaling is the official code's (rows shorter than sqrt(mu) are left alone; a row of norm
exactly sqrt(mu) takes the normalizing branch, for the gradient too). Swapping the views gives
the same loss: the negatives' matrix z1 z2^T is only transposed. The minimum is reached by
well-spread embeddings; collapse of both views to one vector of norm r <= sqrt(mu) gives
(r^4 - 2 r^2) / mu.

Where covssl differs from the official code: nowhere in the value or gradient. The official
runs wrap the model in ``torch.nn.DataParallel``, so there the loss is computed on each GPU's
share of the batch (negatives from that share only) and averaged over the GPUs.

Scope (``TermDef.scope``, see :mod:`covssl.distributed`): global. The repulsion pairs every
sample with every other sample of the batch; pass the gathered batch (B global) to match a single
process on it.
"""

from __future__ import annotations

import math

import torch

from covssl._checks import check_pair, check_positive
from covssl.linalg import at_least_float32


def _onto_ball(z: torch.Tensor, radius: float) -> torch.Tensor:
    """Rows with norm >= radius scaled to norm radius; shorter rows unchanged (no gradient to the scale)."""
    squared_norms = z.square().sum(dim=1, keepdim=True)  # (B, 1); finite gradient even for zero rows
    # clamp_min: scale 1 (constant) below the radius, radius / ||z|| from the radius on
    return z * (radius / torch.sqrt(squared_norms.clamp_min(radius**2)))  # (B, d)


def spectral_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, mu: float = 1.0) -> dict[str, torch.Tensor]:
    """The spectral contrastive loss of HaoChen et al. (2021), as the official code computes it.

    z_k <- z_k * min(1, sqrt(mu) / ||z_k||)                     per row, both views
    attraction = -(2 / B) sum_i <z1_i, z2_i> / mu
    repulsion  = sum_{i != j} <z1_i, z2_j>^2 / (B (B - 1) mu)
    loss       = attraction + repulsion

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        mu: scale mu > 0: rows are kept within the ball of radius sqrt(mu) and the loss is
            divided by mu (official: 1 on CIFAR-10, 10 on ImageNet).

    Returns:
        Dict with "loss", "attraction" (the positive-pair part, <= 0) and "repulsion" (the
        negative-pair part, >= 0), scalar tensors; these are the official ``part1`` and ``part2``.

    Examples:
        >>> z1, z2 = torch.randn(32, 64), torch.randn(32, 64)
        >>> out = spectral_contrastive_loss(z1, z2)
        >>> sorted(out)
        ['attraction', 'loss', 'repulsion']
        >>> bool(torch.isclose(out["loss"], out["attraction"] + out["repulsion"]))
        True
    """
    check_pair(z1, z2)
    mu = check_positive(mu, "mu")
    batch = z1.shape[0]
    radius = math.sqrt(mu)
    with torch.autocast(device_type=z1.device.type, enabled=False):
        dtype = torch.promote_types(at_least_float32(z1).dtype, at_least_float32(z2).dtype)
        a = _onto_ball(z1.to(dtype), radius)  # (B, d)
        b = _onto_ball(z2.to(dtype), radius)  # (B, d)
        positives = (a * b).sum(dim=1)  # (B,) = diag(a b^T)
        similarities = a @ b.T  # (B, d) @ (d, B) -> (B, B)
        off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=a.device)
        # the off-diagonal entries summed directly: no cancellation against the diagonal
        repulsion = similarities.square()[off_diagonal].sum() / (batch * (batch - 1) * mu)
        attraction = -2.0 * positives.mean() / mu
    return {"loss": attraction + repulsion, "attraction": attraction, "repulsion": repulsion}

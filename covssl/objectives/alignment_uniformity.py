"""Alignment and uniformity on the hypersphere.

[0] Wang, Isola, 2020, "Understanding Contrastive Representation Learning through Alignment
    and Uniformity on the Hypersphere", https://arxiv.org/abs/2005.10242

Both metrics act on l2-normalized rows zn = z / ||z||. Uniformity is the log of the average
Gaussian potential between all pairs: it is 0 (its maximum, the worst value) when the batch
collapses to one point and decreases as the points spread over the sphere. It is used as a
loss term (minimize) and as a diagnostic (healthy runs reach about -3.5 to -4 with t = 2 on
CIFAR-10 features).

Distributed training: uniformity is a function of all pairs of the batch; pass the gathered
batch to include the pairs across ranks. Alignment is per-sample and is computed per rank.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``uniformity`` is global (all pairs
of the gathered batch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from covssl._checks import check_embeddings, check_pair, check_positive
from covssl.linalg import at_least_float32


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Log of the mean Gaussian potential between all pairs of normalized rows.

    L_uniform(z) = log( (2 / (B (B - 1))) sum_{i < j} exp(-t ||zn_i - zn_j||^2) )

    computed as logsumexp(-t d_ij^2) - log(B (B - 1) / 2) over the B (B - 1) / 2 distances of
    ``torch.pdist``: the exponentials of -t * 4 (antipodal points, t = 2 gives e^-8) are fine,
    but summing exp first and taking the log after underflows for large t.

    Args:
        z: embeddings, shape (batch, dim), batch >= 2; rows are l2-normalized inside.
        t: the potential's scale t > 0 (the paper uses t = 2).

    Returns:
        Scalar tensor in [-4 t, 0] (float32 or float64). 0 when all rows point the same way
        (collapse, the worst value); lower is more uniform.

    Examples:
        >>> round(uniformity(torch.ones(8, 4)).item(), 6)  # collapsed
        0.0
        >>> z = torch.eye(4)  # orthogonal rows: every ||zn_i - zn_j||^2 = 2
        >>> round(uniformity(z, t=2.0).item(), 6)
        -4.0
    """
    check_embeddings(z, "z")
    t = check_positive(t, "t")
    batch = z.shape[0]
    with torch.autocast(device_type=z.device.type, enabled=False):
        zn = F.normalize(at_least_float32(z), dim=1)  # (B, d)
        sq_dist = torch.pdist(zn, p=2).pow(2)  # (B (B - 1) / 2,) pairs i < j
        return torch.logsumexp(-t * sq_dist, dim=0) - math.log(batch * (batch - 1) / 2)


def alignment_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Mean distance between the normalized views, raised to the power alpha.

    L_align(z1, z2) = (1/B) sum_b ||zn1_b - zn2_b||_2^alpha

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        alpha: exponent alpha > 0 (the paper uses 2).

    Returns:
        Scalar tensor in [0, 2^alpha]; 0 for perfectly aligned views.

    Examples:
        >>> z = torch.randn(8, 16)
        >>> round(alignment_loss(z, -z).item(), 4)  # antipodal: ||zn1 - zn2|| = 2
        4.0
    """
    check_pair(z1, z2)
    alpha = check_positive(alpha, "alpha")
    with torch.autocast(device_type=z1.device.type, enabled=False):
        diff = F.normalize(at_least_float32(z1), dim=1) - F.normalize(at_least_float32(z2), dim=1)  # (B, d)
        sq_norm = diff.pow(2).sum(dim=1)  # (B,)
        if alpha == 2.0:
            return sq_norm.mean()
        # ||x||^alpha = (||x||^2)^(alpha/2). For alpha < 2 the derivative of x^(alpha/2) is
        # infinite at x = 0 (identical pairs); the double ``where`` keeps the value exact and
        # gives those pairs a zero gradient instead of NaN.
        nonzero = sq_norm > 0
        safe = torch.where(nonzero, sq_norm, torch.ones_like(sq_norm))
        return torch.where(nonzero, safe.pow(alpha / 2), torch.zeros_like(sq_norm)).mean()

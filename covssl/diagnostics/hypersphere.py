"""Alignment and uniformity of the normalized embeddings, as diagnostics.

[0] Wang, Isola, 2020, "Understanding Contrastive Representation Learning through Alignment
    and Uniformity on the Hypersphere", https://arxiv.org/abs/2005.10242

These are the read-only versions of the loss terms: float64, no autograd, Python floats, so
that logs and JSON reports hold exactly what the tests check. (The differentiable losses live
in the objectives; the math layer's diagnostics do not import them.)
"""

from __future__ import annotations

import math

import torch

from covssl._checks import check_embeddings, check_pair, check_positive
from covssl.diagnostics._common import as_float64, normalize_rows


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """Mean distance between the normalized views of each sample, to the power alpha.

    alignment(z1, z2) = (1/B) sum_b ||zn1_b - zn2_b||_2^alpha,  zn = z / ||z||.

    Healthy: near 0 (the views agree). Collapsed: also 0 -- alignment alone cannot detect
    collapse, read it with ``uniformity``. Unrelated views of random directions in high
    dimension give about 2^(alpha / 2); antipodal views give 2^alpha, the maximum.

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        alpha: exponent alpha > 0 (the paper uses 2).

    Returns:
        Python float in [0, 2^alpha].

    Examples:
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
        >>> alignment(z, 2.0 * z)  # same directions
        0.0
        >>> round(alignment(z, -z), 6)  # antipodal: ||zn1 - zn2|| = 2
        4.0
    """
    check_pair(z1, z2)
    alpha = check_positive(alpha, "alpha")
    zn1 = normalize_rows(as_float64(z1))  # (B, d)
    zn2 = normalize_rows(as_float64(z2))  # (B, d)
    distances = torch.linalg.vector_norm(zn1 - zn2, dim=1)  # (B,)
    return float(distances.pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """Log of the mean Gaussian potential between all pairs of normalized rows.

    uniformity(z) = log( (2 / (B (B - 1))) sum_{i < j} exp(-t ||zn_i - zn_j||^2) ),

    computed as logsumexp(-t d_ij^2) - log(B (B - 1) / 2) so that large t does not underflow.

    Healthy: low. By Jensen's inequality and sum_{i<j} ||zn_i - zn_j||^2 = B^2 (1 - ||o||^2)
    (o the mean of the unit rows), uniformity >= -2 t B / (B - 1), reached by a regular
    simplex; spread-out batches in high dimension approach -2 t (-4 for t = 2).
    Collapsed: 0, the maximum (all rows point the same way).

    Args:
        z: embeddings, shape (batch, dim), batch >= 2; rows are l2-normalized inside (an
            all-zero row stays at the origin).
        t: the potential's scale t > 0 (the paper uses t = 2).

    Returns:
        Python float in [-4 t, 0].

    Examples:
        >>> uniformity(torch.ones(8, 4))  # collapsed
        0.0
        >>> round(uniformity(torch.eye(4), t=2.0), 6)  # orthogonal rows: ||zn_i - zn_j||^2 = 2
        -4.0
    """
    check_embeddings(z, "z")
    t = check_positive(t, "t")
    batch = z.shape[0]
    zn = normalize_rows(as_float64(z))  # (B, d)
    sq_dist = torch.pdist(zn, p=2).pow(2)  # (B (B - 1) / 2,) pairs i < j
    value = float(torch.logsumexp(-t * sq_dist, dim=0)) - math.log(batch * (batch - 1) / 2)
    return min(value, 0.0)  # log of a mean of values <= 1; clamp the +1e-16 of round-off

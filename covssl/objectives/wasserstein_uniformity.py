"""Wasserstein uniformity: the 2-Wasserstein distance of the normalized batch to N(0, I/d).

[0] Fang, Li, Sun, Wang, 2024, "Rethinking the Uniformity Metric in Self-Supervised
    Learning" (ICLR 2024), https://arxiv.org/abs/2403.00642
    Official code: https://github.com/statsle/WassersteinSSL

Points spread uniformly on the unit sphere of R^d look, coordinate by coordinate, like
N(0, 1/d) draws as d grows, so [0] measures uniformity as the W2 distance between a Gaussian
fitted to the l2-normalized rows and N(0, I/d). For the normalized rows zn_b (b = 1..N):

    mu    = (1/N) sum_b zn_b                                  (d,)
    Sigma = (1/N) sum_b (zn_b - mu)(zn_b - mu)^T               (d, d), biased
    W2    = sqrt(||mu||^2 + 1 + tr Sigma - (2 / sqrt(d)) tr Sigma^{1/2})

It is minimized: 0 when mu = 0 and Sigma = I/d (e.g. the d + 1 vertices of a regular
simplex), up to sqrt(2) when the batch collapses to one point (||mu|| = 1, Sigma = 0, so
W2^2 = 1 + 1 + 0 - 0). As every ||zn_b|| = 1, tr Sigma = 1 - ||mu||^2, and Cauchy-Schwarz gives
tr Sigma^{1/2} <= sqrt(d tr Sigma), so W2 always lies in [0, sqrt(2)]. A healthy batch is far
below collapse: N = 4d points drawn uniformly on the sphere give about 0.3 (0.31 at d = 8,
0.26 at d = 128; a finite batch keeps Sigma's spectrum spread). With N <= d, Sigma has rank
N - 1 < d and W2^2 >= 2 - 2 sqrt((N - 1) / d), so small batches can never reach 0. [0] uses
W2 both as a loss term added to an SSL objective and as a diagnostic, finding it more
sensitive to dimensional collapse than Wang & Isola's :func:`~covssl.objectives.alignment_uniformity.uniformity`.

The official code applies it to the two views concatenated, torch.cat([z1n, z2n]) (2N rows).

Distributed training: mu and Sigma are statistics of whatever batch is given; pass the
globally gathered batch to match a single-process run on it.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``w2_uniformity`` is global: mu and
Sigma (divisor N) are taken over the gathered batch, N global.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from covssl._checks import check_embeddings
from covssl.linalg import at_least_float32


def w2_uniformity(z: torch.Tensor) -> torch.Tensor:
    """W2 distance between N(mu, Sigma) of the l2-normalized rows and N(0, I/d).

    W2 = sqrt(||mu||^2 + 1 + tr Sigma - (2 / sqrt(d)) tr Sigma^{1/2})

    computed as a norm of residuals that are never negative, the same number written as a
    sum of squares (Sigma^{1/2} and I/sqrt(d) commute, so ||Sigma^{1/2} - I/sqrt(d)||_F^2 is
    a sum over eigenvalues):

    W2 = || [ mu ,  sigma_i - 1/sqrt(d)  for i = 1..d ] ||_2

    where sigma_1..sigma_d are the square roots of Sigma's eigenvalues: the singular values of
    the centred normalized batch divided by sqrt(N) (``torch.linalg.svdvals`` of the (N, d)
    matrix, O(N d min(N, d)); Sigma is never formed and no matrix square root is taken), padded
    with d - N zeros when N < d. Written this way no argument of a square root can go
    negative by rounding, and no gradient is NaN: the norm's gradient is bounded (0 at 0),
    and the singular-value gradient U diag(g) V^T needs no gaps between singular values. The
    zero singular value that centring always creates has the left vector 1/sqrt(N), which the
    chain rule through the centring cancels, so the gradient is exact also when N <= d. At a
    truly rank-deficient batch (repeated rows, collapse) the gradient is a finite subgradient.

    Args:
        z: embeddings, shape (batch, dim), batch >= 2; rows are l2-normalized inside, so the
            value does not change when a row is multiplied by c > 0.

    Returns:
        Scalar tensor in [0, sqrt(2)] (float32 or float64); lower is more uniform, sqrt(2)
        is complete collapse. Usable as a loss term (minimize) and as a diagnostic.

    Examples:
        >>> round(w2_uniformity(torch.ones(8, 4)).item(), 6)  # collapsed: sqrt(2)
        1.414214
        >>> tetrahedron = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
        >>> round(w2_uniformity(tetrahedron).item(), 6)  # mean 0, Sigma = I/3: the optimum
        0.0
    """
    check_embeddings(z, "z")
    batch, dim = z.shape
    with torch.autocast(device_type=z.device.type, enabled=False):
        zn = F.normalize(at_least_float32(z), dim=1)  # (B, d)
        mu = zn.mean(dim=0)  # (d,)
        centred = zn - mu  # (B, d)
        roots = torch.linalg.svdvals(centred) / math.sqrt(batch)  # (min(B, d),) = sqrt(eig Sigma)
        missing = dim - roots.shape[0]  # eigenvalues of Sigma that are 0 because B < d
        padding = torch.full((1,), math.sqrt(missing / dim), dtype=zn.dtype, device=zn.device)  # (0 - 1/sqrt(d))^2 each
        residuals = torch.cat([mu, roots - 1.0 / math.sqrt(dim), padding])  # (d + min(B, d) + 1,)
        return torch.linalg.vector_norm(residuals)

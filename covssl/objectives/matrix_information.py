"""Matrix (von Neumann) entropy of the trace-normalized covariance.

[0] Zhang, Tan, Yang, Huang, Yuan, 2024, "Matrix Information Theory for Self-Supervised
    Learning" (Matrix-SSL, ICML 2024), https://arxiv.org/abs/2305.17326

K = Sigma / tr(Sigma) is positive semi-definite with unit trace, i.e. a "density matrix"; its
eigenvalues lambda_i form a probability vector and the von Neumann entropy

    H(K) = -tr(K log K) = -sum_i lambda_i log lambda_i

is the Shannon entropy of the spectrum: log d when Sigma is isotropic (all lambda_i = 1/d),
0 when Sigma has rank 1 (dimensional collapse). exp(H) is the effective rank of Roy and
Vetterli (2007). Maximizing H spreads the variance over every direction, like the log-det
regularizers, but is bounded and insensitive to the overall scale of z.

Choice of Sigma (documented, see ``center`` / ``normalize``): by default the centered,
unbiased batch covariance of z (:func:`covssl.linalg.covariance`), the matrix the rest of
covssl regularizes; ``center=False, normalize=True`` uses the uncentered second moment of
l2-normalized rows, Zn^T Zn / B, whose trace is 1 automatically.

This is the von Neumann entropy of [0]'s definitions (and of I-VNE+), not Matrix-SSL's loss:
Matrix-SSL's official code centers the l2-normalized rows, adds mu I, replaces the matrix log by
a truncated Taylor series around I, and computes matrix *cross*-entropies between the two
views' (cross-)covariances. That loss is :func:`covssl.objectives.matrix_ssl.matrix_ssl_loss`.

Distributed training: a function of the batch covariance; pass the gathered batch.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``matrix_entropy`` is global.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from covssl._checks import check_embeddings
from covssl.linalg import Path, at_least_float32, center as center_rows, use_sample_side


def matrix_entropy(
    z: torch.Tensor,
    *,
    center: bool = True,
    normalize: bool = False,
    path: Path = "auto",
) -> torch.Tensor:
    """Von Neumann entropy of K = Sigma / tr(Sigma), to be maximized.

    Sigma = Zc^T Zc / (B - 1),  Zc = Z - mean(Z)          (center=True, the default)
    K     = Sigma / tr(Sigma)
    H     = -sum_i lambda_i(K) log lambda_i(K)            (0 log 0 = 0)

    When B < d the eigenvalues are taken on the B x B side: Zc Zc^T has the same nonzero
    eigenvalues as Zc^T Zc and the same trace, so H is unchanged and costs O(B^2 d + B^3)
    instead of O(B d^2 + d^3). The (B - 1) divisor cancels in K.

    Eigenvalues are computed with ``eigvalsh`` in float32 or higher (autocast off). Eigenvalues
    below n * machine-epsilon (n = the side of the matrix, K has unit trace so this is relative
    to ||K||) are indistinguishable from rounding noise of eigvalsh; they are treated as exact
    zeros: their term is 0 and so is their gradient. Without this, d/dlambda (lambda log lambda)
    = log lambda + 1 is -inf at the zero eigenvalues that every B < d or collapsed batch has,
    and the backward pass returns NaN.

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        center: subtract the batch mean (covariance) or not (second moment).
        normalize: l2-normalize the rows before forming Sigma (Matrix-SSL uses
            ``center=False, normalize=True``).
        path: "auto" (B x B when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Scalar tensor (float32 or float64) in [0, log min(d, B')] up to rounding, B' = B - 1
        when centered and B otherwise (the rank bound of Sigma). log d is reached by isotropic
        (whitened) embeddings, 0 by rank-1 and by constant ones (Sigma = 0 is defined as
        entropy 0).

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> z = torch.randn(256, 8)
        >>> bool(matrix_entropy(z) > 2.0)  # close to log 8 = 2.079 for isotropic noise
        True
        >>> u = torch.randn(32, 1) * torch.randn(1, 8)  # rank 1: dimensional collapse
        >>> round(abs(matrix_entropy(u).item()), 4)
        0.0
    """
    check_embeddings(z, "z")
    if not isinstance(center, bool):
        raise ValueError(f"center: expected a bool, got {center!r}")
    if not isinstance(normalize, bool):
        raise ValueError(f"normalize: expected a bool, got {normalize!r}")
    batch, dim = z.shape
    sample_side = use_sample_side(batch, dim, path)  # also validates ``path``
    with torch.autocast(device_type=z.device.type, enabled=False):
        x = at_least_float32(z)
        if normalize:
            x = F.normalize(x, dim=1)
        if center:
            x = center_rows(x)
        gram = x @ x.T if sample_side else x.T @ x  # (B, d) @ (d, B) -> (B, B) or (d, B) @ (B, d) -> (d, d)
        trace = torch.diagonal(gram).sum()
        # Constant rows give gram = 0: dividing by max(trace, tiny) keeps K = 0 instead of NaN,
        # and every eigenvalue then falls under the threshold below (entropy 0).
        k = gram / trace.clamp_min(torch.finfo(gram.dtype).tiny)
        eigenvalues = torch.linalg.eigvalsh(k)  # (n,), ascending, sum 1 up to rounding
        threshold = k.shape[0] * torch.finfo(k.dtype).eps
        keep = eigenvalues > threshold
        # Double ``where``: the log only ever sees kept values, so no -inf/NaN reaches the graph.
        safe = torch.where(keep, eigenvalues, torch.ones_like(eigenvalues))
        return torch.where(keep, -safe * torch.log(safe), torch.zeros_like(safe)).sum()

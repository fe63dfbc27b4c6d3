"""Coding rate (log-det of the second moment) and its second-order Taylor surrogate.

[0] Yu, Chan, You, Song, Ma, 2020, "Learning Diverse and Discriminative Representations via the
    Principle of Maximal Coding Rate Reduction", https://arxiv.org/abs/2006.08558
[1] Wu, Zhang, Chen, Ma, et al., 2025, "Simplifying DINO via Coding Rate Regularization",
    https://arxiv.org/abs/2502.10385

With S = Z^T Z / B and a = d / eps^2 the coding rate is R = 1/2 logdet(I_d + a S). Expanding
logdet(I + aS) = a tr S - a^2/2 tr S^2 + a^3/3 tr S^3 - ... gives the surrogate whose two terms
VICReg's variance and covariance penalties mimic; the gap R - R_taylor ~ a^3/6 tr S^3 vanishes
as a ||S|| -> 0.

The eps convention: a = d / (B eps^2) as in MCR^2's paper [0]. SimDINO's [1], EMP-SSL's and
lightly's code use a = d / (B eps) (eps unsquared): their eps = e is covssl's eps = sqrt(e),
and covssl's ``coding_rate(eps=0.5)`` (the ``coding_rate`` preset) is their eps = 0.25. The
``simdino`` and ``emp_ssl`` terms take eps in their code's convention.

Both functions use the second moment of z as given (no centering, no normalization), so
callers decide (SimDINO l2-normalizes first). Both compute in float32 or higher with autocast
disabled, and return float32 for fp16/bf16 inputs.

Distributed training: pass the globally gathered batch; R is not a sum over samples.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``coding_rate`` and
``taylor_coding_rate`` are global (S = Z^T Z / N over the gathered batch, N global).
"""

from __future__ import annotations

import torch

from covssl._checks import check_embeddings, check_positive
from covssl.linalg import Path, at_least_float32, cross_gram_frobenius_sq, logdet_identity_plus_gram, use_sample_side


def coding_rate(z: torch.Tensor, eps: float = 0.5, path: Path = "auto") -> torch.Tensor:
    """Coding rate of a batch of embeddings (to be maximized).

    R_eps(Z) = 1/2 logdet(I_d + d / (B eps^2) Z^T Z)

    With a = d / eps^2 this is 1/2 logdet(I_d + a S), S = Z^T Z / B. When B < d it is computed
    on the B x B side by Sylvester's identity, 1/2 logdet(I_B + (a/B) Z Z^T), always with a
    Cholesky factorization in >= float32.

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        eps: distortion (quantization) level, > 0; larger eps means a smaller, flatter R.
        path: "auto" (B x B when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Scalar tensor, float32 for half inputs, else the input dtype. For a fixed ||Z||_F^2 = B t
        it is largest when Z^T Z / B = (t/d) I (value d/2 log(1 + t/eps^2)) and smallest for a
        rank-1, collapsed Z (value 1/2 log(1 + d t / eps^2)).

    Raises:
        ValueError: on bad input, or when I + a S is not numerically positive definite
            (overflowing embeddings) instead of returning NaN.

    Examples:
        >>> z = torch.nn.functional.normalize(torch.randn(64, 16), dim=1)
        >>> coding_rate(z).item() > 0
        True
    """
    check_embeddings(z, "z")
    eps = check_positive(eps, "eps")
    batch, dim = z.shape
    use_sample_side(batch, dim, path)  # validates ``path`` before any work
    return 0.5 * logdet_identity_plus_gram(z, dim / (batch * eps**2), path)


def taylor_coding_rate(z: torch.Tensor, eps: float = 0.5, path: Path = "auto") -> torch.Tensor:
    """Second-order Taylor expansion of the coding rate around S = 0.

    R_taylor(Z) = 1/2 (a tr S - a^2/2 tr S^2),   S = Z^T Z / B,   a = d / eps^2

    tr S = ||Z||_F^2 / B and tr S^2 = ||Z^T Z||_F^2 / B^2, the latter computed on the B x B side
    when B < d. Unlike R it is unbounded below in ||Z||: it is only a faithful surrogate while
    a ||S|| << 1.

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        eps: distortion level, > 0.
        path: "auto" (B x B when B < d), "feature" (d x d) or "sample" (B x B) for tr S^2.

    Returns:
        Scalar tensor, float32 for half inputs, else the input dtype.

    Examples:
        >>> z = torch.randn(32, 8) * 0.01
        >>> abs(taylor_coding_rate(z) - coding_rate(z)).item() < 1e-4
        True
    """
    check_embeddings(z, "z")
    eps = check_positive(eps, "eps")
    batch, dim = z.shape
    use_sample_side(batch, dim, path)  # validates ``path`` before any work
    a = dim / eps**2
    with torch.autocast(device_type=z.device.type, enabled=False):
        z = at_least_float32(z)
        trace_s = z.square().sum() / batch
        trace_s2 = cross_gram_frobenius_sq(z, z, path) / batch**2
        return 0.5 * (a * trace_s - 0.5 * a**2 * trace_s2)

"""The gap between the coding rate (log-det) and its second-order Taylor surrogate.

[0] Yu, Chan, You, Song, Ma, 2020, "Learning Diverse and Discriminative Representations via
    the Principle of Maximal Coding Rate Reduction", https://arxiv.org/abs/2006.08558
[1] Bardes, Ponce, LeCun, 2021, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning", https://arxiv.org/abs/2105.04906

With S = Z^T Z / B (second moment, d x d) and a = d / eps^2 the coding rate is

    R = 1/2 logdet(I_d + a S) = 1/2 sum_i log(1 + a lambda_i)

and log(1 + x) = x - x^2/2 + x^3/3 - ... gives its second-order surrogate

    T = 1/2 (a tr S - a^2/2 tr S^2),

whose negative is the variance-plus-covariance penalty that VICReg-style terms approximate.
Since log(1 + x) >= x - x^2/2 for x >= 0, the gap R - T is >= 0; it shrinks like
a^3 tr(S^3) / 6 as a ||S|| -> 0 and grows without bound for large a ||S||.
"""

from __future__ import annotations

import torch

from covssl._checks import check_embeddings, check_positive
from covssl.diagnostics._common import as_float64
from covssl.linalg import use_sample_side


def coding_rate_terms(z: torch.Tensor, eps: float = 0.5) -> dict[str, float]:
    """Coding rate, its second-order Taylor surrogate and their gap (see the module docstring).

    R   = 1/2 sum_i log(1 + a lambda_i),  lambda_i the eigenvalues of S = Z^T Z / B,
    T   = 1/2 (a tr S - a^2 / 2 tr S^2),  a = d / eps^2,
    gap = R - T >= 0.

    The eigenvalues come from the smaller of Z^T Z and Z Z^T (same nonzero spectrum).

    Healthy / collapsed: the gap is not a collapse indicator; it says how far the embedding
    scale is from the regime a ||S|| << 1 where VICReg's penalty matches the log-det. A
    collapsed batch of identical rows c has one eigenvalue ||c||^2, so its R is small (that
    of a rank-1 S), whereas a healthy one has R near its maximum for the given trace.

    Args:
        z: embeddings, shape (batch, dim), batch >= 2 (not centered: S is the second moment,
            as in the coding-rate objective).
        eps: distortion eps > 0 of the coding rate.

    Returns:
        Dict of Python floats with keys "coding_rate", "taylor_surrogate", "taylor_gap".

    Examples:
        >>> terms = coding_rate_terms(torch.zeros(4, 2) + 0.05, eps=1.0)  # S = 0.0025 * ones
        >>> round(terms["taylor_gap"], 10)  # x = a lambda = 0.01: gap = x^3/6 - x^4/8 + ...
        1.654e-07
    """
    check_embeddings(z, "z")
    eps = check_positive(eps, "eps")
    batch, dim = z.shape
    z64 = as_float64(z)
    a = dim / eps**2
    if use_sample_side(batch, dim):
        gram = z64 @ z64.T / batch  # (B, d) @ (d, B) -> (B, B), same nonzero spectrum as S
    else:
        gram = z64.T @ z64 / batch  # (d, B) @ (B, d) -> (d, d), S itself
    eigenvalues = torch.linalg.eigvalsh(gram).clamp_min(0.0)  # PSD up to round-off
    rate = 0.5 * float(torch.log1p(a * eigenvalues).sum())
    # Traces from the matrix, not the eigenvalues: exact up to the sums' round-off.
    trace = float(torch.diagonal(gram).sum())
    trace_sq = float(gram.pow(2).sum())  # tr S^2 = ||S||_F^2 = ||Z Z^T / B||_F^2
    surrogate = 0.5 * (a * trace - 0.5 * a**2 * trace_sq)
    return {"coding_rate": rate, "taylor_surrogate": surrogate, "taylor_gap": rate - surrogate}


def taylor_gap(z: torch.Tensor, eps: float = 0.5) -> float:
    """Coding rate minus its second-order Taylor surrogate, R - T (>= 0).

    R = 1/2 logdet(I + a S),  T = 1/2 (a tr S - a^2/2 tr S^2),  S = Z^T Z / B,  a = d / eps^2.

    Healthy / collapsed: not a collapse indicator. The gap is about a^3 tr(S^3) / 6 when
    a ||S|| << 1 (VICReg's penalty is then a faithful log-det surrogate) and grows without
    bound as a ||S|| increases (the surrogate then rewards the wrong spectra).

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        eps: distortion eps > 0 of the coding rate.

    Returns:
        Python float >= 0 (up to round-off).

    Examples:
        >>> round(taylor_gap(torch.zeros(4, 2) + 0.05, eps=1.0), 10)  # a ||S|| = 0.01
        1.654e-07
        >>> taylor_gap(torch.zeros(4, 2) + 1.0, eps=1.0) > 1.0  # a ||S|| = 4: far off
        True
    """
    return coding_rate_terms(z, eps)["taylor_gap"]

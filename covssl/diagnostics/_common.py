"""Small numerical helpers shared by the diagnostics (private).

Diagnostics are read, not differentiated: they run in float64 without autograd and return
Python floats, so that a value printed in a log or written to JSON is exactly the value the
tests check.
"""

from __future__ import annotations

import math

import torch

# Centering a batch of identical rows in float64 leaves entries of size ~ log2(B) eps |z|;
# singular values below this multiple of eps64 * ||z||_F are such round-off, not variation.
_CENTERING_ROUND_OFF = 32.0


def as_float64(z: torch.Tensor) -> torch.Tensor:
    """Detached float64 copy of z: the diagnostics never take part in autograd."""
    return z.detach().to(torch.float64)


def normalize_rows(z: torch.Tensor) -> torch.Tensor:
    """Rows divided by their l2 norm; an all-zero row stays zero (it has no direction).

    Args:
        z: float64 tensor, shape (batch, dim).

    Returns:
        Tensor of shape (batch, dim) with unit-norm rows (zero rows kept at zero).
    """
    norms = torch.linalg.vector_norm(z, dim=1, keepdim=True)  # (B, 1)
    return z / torch.where(norms > 0, norms, torch.ones_like(norms))


def input_eps(dtype: torch.dtype) -> float:
    """Machine epsilon of the input's precision, at least float32's.

    Half-precision embeddings are upcast before any diagnostic; bf16's eps (7.8e-3) times the
    matrix size would declare every singular value but the largest to be zero.
    """
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    return torch.finfo(dtype).eps


def centered_singular_values(z: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Singular values of the centered batch and the tolerance below which they count as zero.

    The tolerance is the larger of
      * max(B, d) * eps(input dtype) * s_max -- the numerical-rank rule of LAPACK/numpy: smaller
        singular values are not resolved by data stored in that precision;
      * 32 * eps64 * ||z||_F -- the round-off of centering in float64, so that a batch of
        identical rows has rank exactly 0 instead of the rank of its rounding errors.

    Args:
        z: embeddings in any floating dtype, shape (batch, dim).

    Returns:
        (s, tol): s of shape (min(batch, dim),) in float64, descending; tol a Python float.
    """
    batch, dim = z.shape
    z64 = as_float64(z)
    zc = z64 - z64.mean(dim=0, keepdim=True)  # (B, d)
    s = torch.linalg.svdvals(zc)  # (min(B, d),) descending
    s_max = float(s[0]) if s.numel() else 0.0
    frobenius = float(torch.linalg.vector_norm(z64))
    tol = max(
        max(batch, dim) * input_eps(z.dtype) * s_max,
        _CENTERING_ROUND_OFF * torch.finfo(torch.float64).eps * frobenius,
    )
    return s, tol


def entropy(p: torch.Tensor) -> float:
    """Shannon entropy -sum p log p (natural log) of a probability vector, with 0 log 0 = 0."""
    positive = p[p > 0]
    return float(-(positive * torch.log(positive)).sum())


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator with x / 0 = inf for x > 0 and 0 / 0 = nan (no exception)."""
    if denominator > 0:
        return numerator / denominator
    return math.inf if numerator > 0 else math.nan

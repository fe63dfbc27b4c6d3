"""Eigen-spectrum of the embedding covariance: spectrum, effective rank, isotropy.

[0] Roy, Vetterli, 2007, "The effective rank: a measure of effective dimensionality",
    EUSIPCO 2007, https://infoscience.epfl.ch/record/110188/files/RoyV07.pdf

A healthy embedding spreads its variance over many directions (a flat spectrum); dimensional
collapse shows as a spectrum that drops to zero after a few eigenvalues, complete collapse as
an all-zero spectrum. All values are computed in float64 without autograd.
"""

from __future__ import annotations

import math

import torch

from covssl._checks import check_embeddings
from covssl.diagnostics._common import as_float64, centered_singular_values, entropy
from covssl.linalg import Path, use_sample_side


def spectrum(z: torch.Tensor, path: Path = "auto") -> torch.Tensor:
    """Eigenvalues of the batch covariance, in descending order.

    C = (Z - mean)^T (Z - mean) / (B - 1); spectrum(z) = eig(C), sorted descending, with the
    tiny negative values that round-off gives a positive semi-definite matrix clamped to 0.
    When B < d the nonzero eigenvalues are those of the B x B matrix
    (Z - mean) (Z - mean)^T / (B - 1) (same nonzero spectrum, O(B^2 d) instead of O(d^3));
    the remaining d - B are exactly 0.

    Healthy: a flat spectrum (whitened data: all ones). Collapsed: all zeros (complete
    collapse) or zeros after the first k (dimensional collapse to rank k).

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        path: "auto" (the cheaper side), "feature" (d x d) or "sample" (B x B).

    Returns:
        Detached float64 tensor of shape (dim,), descending, all >= 0.

    Examples:
        >>> z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
        >>> spectrum(z).tolist()  # variances 2/3 and 8/3, uncorrelated
        [2.6666666666666665, 0.6666666666666666]
        >>> spectrum(torch.ones(5, 3)).tolist()  # collapsed
        [0.0, 0.0, 0.0]
    """
    check_embeddings(z, "z")
    batch, dim = z.shape
    z64 = as_float64(z)
    zc = z64 - z64.mean(dim=0, keepdim=True)  # (B, d)
    if use_sample_side(batch, dim, path):
        gram = zc @ zc.T / (batch - 1)  # (B, d) @ (d, B) -> (B, B)
    else:
        gram = zc.T @ zc / (batch - 1)  # (d, B) @ (B, d) -> (d, d), the covariance
    eigenvalues = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0.0)  # descending
    if eigenvalues.numel() < dim:  # sample side: the other d - B eigenvalues are zero
        eigenvalues = torch.cat([eigenvalues, eigenvalues.new_zeros(dim - eigenvalues.numel())])
    return eigenvalues[:dim]


def _effective_rank(s: torch.Tensor, tol: float) -> float:
    """exp(H(s / sum s)) over the singular values above tol; 0.0 when none is."""
    s = torch.where(s > tol, s, torch.zeros_like(s))
    total = float(s.sum())
    if total == 0.0:
        return 0.0
    return math.exp(entropy(s / total))


def effective_rank(z: torch.Tensor) -> float:
    """Roy & Vetterli's effective rank of the centered embeddings.

    erank(z) = exp( -sum_i p_i log p_i ),  p_i = s_i / sum_j s_j,

    with s_i the singular values of the centered batch Z - mean (0 log 0 = 0). It lies in
    [1, rank] for a nonzero matrix and equals k when the k nonzero singular values are equal.

    Collapsed input: when every singular value is zero (identical rows) the entropy is
    undefined; we return 0.0, the rank of the zero matrix, so that "rank-k data -> k" also
    holds for k = 0. Singular values at round-off level (see ``centered_singular_values``:
    max(B, d) * eps * s_max, or 32 * eps64 * ||z||_F) count as zero. The measure is
    scale-invariant: a collapse that leaves tiny but genuine variation is rated by the shape
    of that variation, so read it together with ``std_of_normalized`` and
    ``center_residual``.

    Healthy: about min(B - 1, d) (exactly d for whitened data with B - 1 >= d).
    Collapsed: 0.0 (complete collapse), about k (dimensional collapse to rank k).

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.

    Returns:
        Python float in {0} U [1, min(B - 1, d)].

    Examples:
        >>> z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        >>> round(effective_rank(z), 6)  # two equal singular values
        2.0
        >>> effective_rank(torch.ones(6, 4))  # collapsed
        0.0
    """
    check_embeddings(z, "z")
    s, tol = centered_singular_values(z)
    return _effective_rank(s, tol)


def isotropy(z: torch.Tensor) -> dict[str, float]:
    """How close the covariance is to a multiple of the identity.

    With lambda_1 >= ... >= lambda_d the covariance eigenvalues (from the singular values of
    the centered batch, lambda_i = s_i^2 / (B - 1); round-off-level ones count as 0):

      condition_number   = lambda_1 / lambda_d              (inf when lambda_d = 0)
      eigenvalue_entropy = -sum_i q_i log q_i / log d,  q_i = lambda_i / sum_j lambda_j
      effective_rank     = Roy & Vetterli's erank (see ``effective_rank``)

    eigenvalue_entropy is 1 exactly when all d eigenvalues are equal; it is defined as 0.0
    for an all-zero covariance and, for d = 1, as 1.0 (one nonzero eigenvalue is isotropic).
    When B - 1 < d the covariance is singular: condition number inf and entropy at most
    log(B - 1) / log d.

    Healthy: condition_number near 1, eigenvalue_entropy near 1, effective_rank near
    min(B - 1, d). Collapsed: condition_number inf, eigenvalue_entropy 0 (complete collapse)
    or log k / log d (rank k), effective_rank 0 or about k.

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.

    Returns:
        Dict of Python floats with keys "condition_number", "eigenvalue_entropy",
        "effective_rank".

    Examples:
        >>> z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
        >>> {k: round(v, 4) for k, v in isotropy(z).items()}
        {'condition_number': 4.0, 'eigenvalue_entropy': 0.7219, 'effective_rank': 1.8899}
        >>> isotropy(torch.ones(4, 3))["condition_number"]
        inf
    """
    check_embeddings(z, "z")
    batch, dim = z.shape
    s, tol = centered_singular_values(z)
    kept = torch.where(s > tol, s, torch.zeros_like(s))
    eigenvalues = kept.pow(2) / (batch - 1)  # (min(B, d),) descending
    largest = float(eigenvalues[0])
    # svdvals returns min(B, d) values; when B < d the other d - B eigenvalues are exactly 0.
    smallest = float(eigenvalues[-1]) if eigenvalues.numel() == dim else 0.0
    condition = largest / smallest if smallest > 0 else math.inf
    total = float(eigenvalues.sum())
    if total == 0.0:
        normalized_entropy = 0.0
    elif dim == 1:
        normalized_entropy = 1.0
    else:
        normalized_entropy = entropy(eigenvalues / total) / math.log(dim)
    return {
        "condition_number": condition,
        "eigenvalue_entropy": normalized_entropy,
        "effective_rank": _effective_rank(s, tol),
    }

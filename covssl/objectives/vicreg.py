"""VICReg: variance, invariance and covariance terms.

[0] Bardes, Ponce, LeCun, 2021, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning", https://arxiv.org/abs/2105.04906

The three terms follow the official forward pass exactly, including its two asymmetries: the
variance term is the *mean* of the two branches (``/ 2``) while the covariance term is their
*sum*. Dropping the ``/ 2`` silently doubles the variance weight.

Distributed training: every term here uses whatever batch it is given; pass the globally
gathered batch for the variance and covariance terms, as the official code does.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``variance_hinge`` and
``covariance_penalty`` are global (Var_j and C over the gathered batch, divisor N - 1 with N the
global batch); the invariance (the ``mse`` term) is local (a mean over the rank's own rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from covssl._checks import check_embeddings, check_non_negative, check_pair, check_positive
from covssl.linalg import Path, at_least_float32, center, offdiagonal_sq_sum, use_sample_side


def variance_hinge(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4, squared: bool = False) -> torch.Tensor:
    """Hinge on the per-dimension standard deviation, VICReg's anti-collapse term.

    v(Z) = (1/d) sum_j max(0, gamma - sqrt(Var_j(Z) + eps))      (squared=True squares each hinge)

    Var_j is the unbiased batch variance (divisor B - 1), as in the official code. Healthy
    embeddings (every std >= gamma) give 0; collapsed ones (z = constant) give the worst value
    gamma - sqrt(eps) (or its square).

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        gamma: target standard deviation, > 0.
        eps: added to the variance before the square root so the gradient stays finite, > 0.
        squared: square the hinge (a smooth variant used by some follow-ups).

    Returns:
        Scalar tensor.

    Examples:
        >>> z = torch.zeros(8, 4)
        >>> round(variance_hinge(z).item(), 6)  # collapsed: 1 - sqrt(1e-4)
        0.99
    """
    check_embeddings(z, "z")
    return _variance_hinge(z, check_positive(gamma, "gamma"), check_positive(eps, "eps"), squared)


def _variance_hinge(z: torch.Tensor, gamma: float, eps: float, squared: bool) -> torch.Tensor:
    with torch.autocast(device_type=z.device.type, enabled=False):
        std = torch.sqrt(at_least_float32(z).var(dim=0) + eps)  # (d,), unbiased like the official code
        hinge = F.relu(gamma - std)
        return (hinge.square() if squared else hinge).mean()


def covariance_penalty(z: torch.Tensor, path: Path = "auto") -> torch.Tensor:
    """Sum of squared off-diagonal covariances, VICReg's decorrelation term.

    c(Z) = (1/d) sum_{i != j} C_ij^2,   C = (Z - mean)^T (Z - mean) / (B - 1)

    When B < d the d x d matrix C is never formed: sum_{i != j} C_ij^2 = ||C||_F^2 - sum_i C_ii^2
    and ||Zc^T Zc||_F^2 = ||Zc Zc^T||_F^2, which costs O(B^2 d) instead of O(B d^2).

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        path: "auto" (B x B when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Scalar tensor; 0 for decorrelated embeddings, up to rounding: it is computed as a
        difference, so it can come out ~1e-16 * ||C||_F^2 below zero (float64). Not invariant to
        rotations z -> z Q (only ||C||_F^2 is): it penalizes correlation in the given basis.

    Examples:
        >>> z = torch.randn(16, 64)
        >>> covariance_penalty(z).shape
        torch.Size([])
    """
    check_embeddings(z, "z")
    use_sample_side(z.shape[0], z.shape[1], path)  # validates ``path`` before any work
    return _covariance_penalty(z, path)


def _covariance_penalty(z: torch.Tensor, path: Path) -> torch.Tensor:
    batch, dim = z.shape
    with torch.autocast(device_type=z.device.type, enabled=False):
        # Float32 at least: the B x B path multiplies two Gram matrices entrywise, which overflows fp16.
        zc = center(at_least_float32(z))  # (B, d)
        return offdiagonal_sq_sum(zc, zc, scale=1.0 / (batch - 1), path=path) / dim


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """The full VICReg objective on two views, term by term as in the official code.

    invariance = (1/(B d)) sum_{b,j} (z1_bj - z2_bj)^2
    variance   = (v(Z1) + v(Z2)) / 2
    covariance = c(Z1) + c(Z2)
    loss       = sim_weight * invariance + var_weight * variance + cov_weight * covariance

    with v = :func:`variance_hinge` and c = :func:`covariance_penalty`.

    Args:
        z1: embeddings of the first view, shape (batch, dim).
        z2: embeddings of the second view, shape (batch, dim).
        sim_weight: weight of the invariance (MSE) term, >= 0 (paper: 25).
        var_weight: weight of the variance term, >= 0 (paper: 25).
        cov_weight: weight of the covariance term, >= 0 (paper: 1).
        gamma: target standard deviation of the variance hinge, > 0.
        eps: variance stabilizer of the hinge, > 0.
        path: "auto", "feature" or "sample" for the covariance term.

    Returns:
        Dict with "loss" (weighted total) and the unweighted "invariance", "variance" and
        "covariance" terms, all scalar tensors.

    Examples:
        >>> z1, z2 = torch.randn(32, 16), torch.randn(32, 16)
        >>> out = vicreg_loss(z1, z2)
        >>> sorted(out)
        ['covariance', 'invariance', 'loss', 'variance']
    """
    check_pair(z1, z2)  # once here: each finiteness check is a device sync on GPU
    sim_weight = check_non_negative(sim_weight, "sim_weight")
    var_weight = check_non_negative(var_weight, "var_weight")
    cov_weight = check_non_negative(cov_weight, "cov_weight")
    gamma = check_positive(gamma, "gamma")
    eps = check_positive(eps, "eps")
    use_sample_side(z1.shape[0], z1.shape[1], path)  # validates ``path`` before any work
    invariance = F.mse_loss(at_least_float32(z1), at_least_float32(z2))
    variance = (_variance_hinge(z1, gamma, eps, False) + _variance_hinge(z2, gamma, eps, False)) / 2
    covariance = _covariance_penalty(z1, path) + _covariance_penalty(z2, path)
    loss = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    return {"loss": loss, "invariance": invariance, "variance": variance, "covariance": covariance}

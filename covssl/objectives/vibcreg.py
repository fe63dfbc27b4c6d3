"""VIbCReg: VICReg with the covariance term computed on the correlation matrix.

[0] Lee, Aune, 2021, "VIbCReg: Variance-Invariance-better-Covariance Regularization for
    Self-Supervised Learning on Time Series", https://arxiv.org/abs/2109.00783
    Official code: https://github.com/ML4ITS/vibcreg (vibcreg/losses/*.py,
    vibcreg/frameworks/vibcreg_.py; the paper links github.com/danelee2601/VIbCReg)

    invariance  = (1/(B d)) sum_{b,j} (z1_bj - z2_bj)^2
    variance    = v(Z1) + v(Z2),   v(Z) = (1/d) sum_j max(0, gamma - sqrt(Var_j(Z) + eps))
    covariance  = r(Z1) + r(Z2),   r(Z) = (1/d^2) sum_{i != j} R_ij^2
    R           = Zn^T Zn,  Zn = column-wise l2-normalized (Z - mean)   (the correlation matrix)
    loss        = sim_weight * invariance + var_weight * variance + cov_weight * covariance

Differences from VICReg (:mod:`covssl.objectives.vicreg`), all as in the official code:

* the covariance term penalizes *correlations* (R_ii = 1, |R_ij| <= 1), so its scale does not
  depend on the variance of z and needs no re-tuning when the variance term moves it; it is
  the mean of the squared off-diagonal entries over all d^2 entries (``(R ** 2).mean()`` with
  the diagonal zeroed), not the sum / d of VICReg;
* the variance term is the *sum* of the two views' hinges (VICReg: their mean);
* default weights 25 / 25 / 200 (official ``lambda_vibcreg``, ``mu_vibcreg``, ``nu_vibcreg``).

Not part of the loss: VIbCReg's projector ends with IterNorm (iterative whitening, the paper's
"better" covariance component, official ``add_IterN_at_the_last_in_proj_vibcreg: True``); it is
a model layer and belongs to the projector, not here. The column normalization uses
``F.normalize`` (norm clamped at 1e-12): a constant column gives a zero row and column in R.

Distributed training: pass the gathered batch, as for VICReg.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``correlation_penalty`` and the
variance are global (batch means, norms and variances over the gathered batch); the
invariance is local.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from covssl._checks import check_embeddings, check_non_negative, check_pair, check_positive, finite_values_checked
from covssl.linalg import Path, at_least_float32, center, offdiagonal_sq_sum, use_sample_side
from covssl.objectives.vicreg import variance_hinge


def correlation_penalty(z: torch.Tensor, path: Path = "auto") -> torch.Tensor:
    """Mean squared off-diagonal correlation, VIbCReg's decorrelation term for one view.

    r(Z) = (1/d^2) sum_{i != j} R_ij^2,   R = Zn^T Zn,   Zn_j = (Z_j - mean Z_j) / ||Z_j - mean Z_j||

    When B < d the d x d matrix R is never formed (see :func:`covssl.linalg.offdiagonal_sq_sum`).

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        path: "auto" (B x B when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Scalar tensor in [0, (d - 1)/d]: 0 for uncorrelated dimensions, (d - 1)/d when every
        pair of dimensions is perfectly (anti-)correlated. Invariant to z -> z diag(s) + t for
        any nonzero s (a correlation), so unlike VICReg's covariance term it cannot be lowered
        by shrinking z. Constant columns count as uncorrelated with everything.

    Examples:
        >>> z = torch.randn(16, 1).repeat(1, 4)  # four copies of one feature
        >>> round(correlation_penalty(z).item(), 4)  # 12 off-diagonal ones / 16
        0.75
    """
    check_embeddings(z, "z")
    use_sample_side(z.shape[0], z.shape[1], path)  # validates ``path`` before any work
    return _correlation_penalty(z, path)


def _correlation_penalty(z: torch.Tensor, path: Path) -> torch.Tensor:
    dim = z.shape[1]
    with torch.autocast(device_type=z.device.type, enabled=False):
        # Float32 at least: the B x B path multiplies two Gram matrices entrywise, which overflows fp16.
        zn = F.normalize(center(at_least_float32(z)), dim=0)  # (B, d), unit-norm columns
        return offdiagonal_sq_sum(zn, zn, scale=1.0, path=path) / dim**2


def vibcreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 200.0,
    eps: float = 1e-4,
    gamma: float = 1.0,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """The VIbCReg objective on two views, term by term as in the official code.

    invariance = (1/(B d)) sum_{b,j} (z1_bj - z2_bj)^2
    variance   = v(Z1) + v(Z2)                 (a sum, not VICReg's mean)
    covariance = r(Z1) + r(Z2)
    loss       = sim_weight * invariance + var_weight * variance + cov_weight * covariance

    with v = :func:`covssl.objectives.vicreg.variance_hinge` (unbiased variance) and
    r = :func:`correlation_penalty`.

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        sim_weight: weight of the invariance (MSE) term, >= 0 (official lambda: 25).
        var_weight: weight of the variance term, >= 0 (official mu: 25).
        cov_weight: weight of the correlation term, >= 0 (official nu: 200).
        eps: variance stabilizer of the hinge, > 0 (official: 1e-4).
        gamma: target standard deviation of the hinge, > 0 (official: 1).
        path: "auto", "feature" or "sample" for the correlation term.

    Returns:
        Dict with "loss" (weighted total) and the unweighted "invariance", "variance" and
        "covariance" terms, all scalar tensors.

    Examples:
        >>> z1, z2 = torch.randn(32, 16), torch.randn(32, 16)
        >>> out = vibcreg_loss(z1, z2)
        >>> sorted(out)
        ['covariance', 'invariance', 'loss', 'variance']
    """
    check_pair(z1, z2)  # once here: each finiteness check is a device sync on GPU
    sim_weight = check_non_negative(sim_weight, "sim_weight")
    var_weight = check_non_negative(var_weight, "var_weight")
    cov_weight = check_non_negative(cov_weight, "cov_weight")
    eps = check_positive(eps, "eps")
    gamma = check_positive(gamma, "gamma")
    use_sample_side(z1.shape[0], z1.shape[1], path)  # validates ``path`` before any work
    with torch.autocast(device_type=z1.device.type, enabled=False):
        invariance = F.mse_loss(at_least_float32(z1), at_least_float32(z2))
    # The public hinge re-checks its input, which would sync again: the checks above suffice.
    with finite_values_checked():
        variance = variance_hinge(z1, gamma=gamma, eps=eps) + variance_hinge(z2, gamma=gamma, eps=eps)
    covariance = _correlation_penalty(z1, path) + _correlation_penalty(z2, path)
    loss = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    return {"loss": loss, "invariance": invariance, "variance": variance, "covariance": covariance}

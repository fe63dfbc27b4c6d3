"""VNE and I-VNE+: von Neumann entropy of the autocorrelation of l2-normalized embeddings.

[0] Kim, Kang, Hwang, Shin, Rhee, 2023, "VNE: An Effective Method for Improving Deep
    Representation by Manipulating Eigenvalue Distribution" (CVPR 2023),
    https://arxiv.org/abs/2304.01434
    Official code: https://github.com/jaeill/CVPR23-VNE (vne/__init__.py ``get_vne``;
    examples/i-vne+/train_ivne_imagenet100.py)

    Zn     = rows of Z divided by their l2 norms               (B, d)
    C_auto = Zn^T Zn / B                                       (d, d), uncentred, trace 1
    S      = -sum_i lambda_i log lambda_i,  lambda = eig(C_auto) (0 log 0 = 0), to be maximized
    I-VNE+ = -alpha_1 * mean_b cos(z1_b, z2_b) - alpha_2 * (S(Z1) + S(Z2)) / 2

S is in [0, log min(B, d)]: 0 when every row points the same way (collapse), log d when
C_auto = I/d (isotropic). It does not depend on the scale of each row.

Relation to :func:`covssl.objectives.matrix_information.matrix_entropy`: that function takes
the entropy of Sigma / tr(Sigma); with ``center=False, normalize=True`` Sigma is Zn^T Zn and
tr(Sigma) = B, i.e. exactly C_auto. :func:`von_neumann_entropy` is that call (the default of
``matrix_entropy`` is the *centred* covariance, a different matrix). The one difference from the
official ``get_vne`` is an exactly zero row of Z: the official code keeps dividing by B (the
eigenvalues then sum to less than 1), covssl divides by the trace (they still sum to 1).

Numerics: the official code takes the singular values s of Zn / sqrt(B) (lambda = s^2, on the
smaller side automatically) and ``nansum``s; the forward value is fine, but its backward pass
is NaN whenever a singular value comes out exactly 0 (d/ds s^2 log s^2 = 0 * -inf), e.g. for
collapsed or one-hot rows. covssl takes ``eigvalsh`` of the smaller Gram matrix (Zn Zn^T / B
when B < d: the same nonzero eigenvalues s^2), whose gradient V diag(g) V^T needs no eigenvalue
gaps, and treats eigenvalues below n * machine-epsilon as exact zeros (term and gradient 0), so
the gradient is finite for collapsed and rank-deficient batches too.

I-VNE+ as in the official script (loss = -(alpha_1 * avg_cossim + alpha_2 * avg_entropy)):
alpha_1 = 4.16 = log(64), the log of its batch size (the maximum of S when B < d), alpha_2 = 1.
The official script is multi-crop (2 global + 4 local views: cosines of each global view with
every other view, entropy averaged over all views); this function is its two-view case.

Distributed training: S is a function of the batch autocorrelation; pass the gathered batch.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``von_neumann_entropy`` is global;
the cosine alignment is local.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from covssl._checks import check_non_negative, check_pair, finite_values_checked
from covssl.linalg import Path, at_least_float32, use_sample_side
from covssl.objectives.matrix_information import matrix_entropy


def von_neumann_entropy(z: torch.Tensor, path: Path = "auto") -> torch.Tensor:
    """Von Neumann entropy S of C_auto = Zn^T Zn / B, VNE's regularizer (to be maximized).

    S = -sum_i lambda_i log lambda_i,   lambda = eigenvalues of C_auto,   Zn = z / ||z|| per row

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        path: "auto" (B x B when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Scalar tensor (float32 or float64) in [0, log min(B, d)] up to rounding: log d for
        isotropic rows (C_auto = I/d), 0 when all rows are parallel. Invariant to rescaling
        each row and to rotations z -> z Q; not to a shift z -> z + t (C_auto is uncentred).

    Examples:
        >>> z = torch.eye(4)  # four orthogonal rows: C_auto = I/4
        >>> round(von_neumann_entropy(z).item(), 4)  # log 4
        1.3863
        >>> round(abs(von_neumann_entropy(torch.ones(8, 4)).item()), 4)  # collapsed
        0.0
    """
    return matrix_entropy(z, center=False, normalize=True, path=path)


def i_vne_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    alpha_1: float = 4.16,
    alpha_2: float = 1.0,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """The I-VNE+ objective on two views: cosine invariance plus von Neumann entropy.

    alignment = (1/B) sum_b cos(z1_b, z2_b)                       (to be maximized)
    entropy   = (S(Z1) + S(Z2)) / 2,   S = :func:`von_neumann_entropy`   (to be maximized)
    loss      = -(alpha_1 * alignment + alpha_2 * entropy)

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        alpha_1: weight of the alignment, >= 0 (official: 4.16 = log 64 for batch 64; log B
            balances the cosine in [-1, 1] against S in [0, log B]).
        alpha_2: weight of the entropy, >= 0 (official: 1).
        path: "auto", "feature" or "sample" for the eigenvalues.

    Returns:
        Dict with "loss" (weighted total, minimized) and the unweighted "alignment" (mean cosine
        similarity, in [-1, 1]) and "entropy" (in [0, log min(B, d)]), all scalar tensors.

    Examples:
        >>> z = torch.eye(4)
        >>> out = i_vne_loss(z, 2 * z)  # aligned (cos 1) and isotropic (S = log 4)
        >>> round(out["alignment"].item(), 4), round(out["entropy"].item(), 4)
        (1.0, 1.3863)
        >>> round(out["loss"].item(), 4)  # -(4.16 * 1 + 1.3863)
        -5.5463
    """
    check_pair(z1, z2)  # once here: each finiteness check is a device sync on GPU
    alpha_1 = check_non_negative(alpha_1, "alpha_1")
    alpha_2 = check_non_negative(alpha_2, "alpha_2")
    use_sample_side(z1.shape[0], z1.shape[1], path)  # validates ``path`` before any work
    with torch.autocast(device_type=z1.device.type, enabled=False):
        # F.cosine_similarity, as the official script: norms clamped at 1e-8, a zero row gives 0
        alignment = F.cosine_similarity(at_least_float32(z1), at_least_float32(z2), dim=1).mean()
    with finite_values_checked():  # checked above; avoids two more device syncs
        entropy = (von_neumann_entropy(z1, path) + von_neumann_entropy(z2, path)) / 2
    return {"loss": -(alpha_1 * alignment + alpha_2 * entropy), "alignment": alignment, "entropy": entropy}

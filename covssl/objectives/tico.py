"""TiCo: transformation invariance plus a covariance contrast against a running covariance.

[0] Zhu, Moraes, Karakulak, Sobol, Canziani, LeCun, 2022, "TiCo: Transformation Invariance and
    Covariance Contrast for Self-Supervised Visual Representation Learning",
    https://arxiv.org/abs/2206.10698
    No official code was released; the reference here is the paper's equations and pseudocode
    and lightly's ``TiCoLoss`` (https://github.com/lightly-ai/lightly, lightly/loss/tico_loss.py).

With rows l2-normalized, zn = z / ||z||, and C the running covariance (C_0 = 0), each step

    C_t         = beta * C_{t-1} + (1 - beta) * sg(zn1^T zn1) / B        (d, d), sg = stop-gradient
    invariance  = 1 - mean_i <zn1_i, zn2_i>
    contrast    = mean_i zn1_i^T C_t zn1_i
    loss        = invariance + rho * contrast

The contrast term is a weighted sum of squared cosine similarities of the current batch against
all past batches, (1 - beta) beta^k / B^2 sum_{i,j} <zn1_i, zn1_j^(t-k)>^2: [0] reads it as MoCo
with an implicit memory bank of unlimited size. No gradient flows through C_t, neither through
the stored past nor through the current batch's term: [0]'s figure shows the covariance as a
constant, and lightly detaches it too (lightly PR #1484, 2024). Earlier lightly versions and
the unofficial sayannag/TiCo-pytorch let the gradient flow through zn1^T zn1; with it the
current batch's part of the gradient doubles. The loss is asymmetric in the views, as in [0]:
only view 1 feeds C and the contrast. [0]'s equation has the constant 1 in the invariance term
(its pseudocode does not); lightly's default rho = 20, [0] recommends 8.

Scope (``TermDef.scope``, see :mod:`covssl.distributed`): global. C is updated from the batch
covariance and the contrast pairs each sample with the whole batch; pass the gathered batch so
that every rank keeps the same C (lightly's ``gather_distributed``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from covssl._checks import check_embeddings, check_finite, check_non_negative, check_pair
from covssl.linalg import at_least_float32


def _check_beta(value: object) -> float:
    value = check_non_negative(value, "beta")
    if value >= 1.0:
        raise ValueError(f"beta: expected a weight in [0, 1) on the previous covariance, got {value!r}")
    return value


def _check_cov(cov: object, dim: int) -> torch.Tensor:
    if not isinstance(cov, torch.Tensor):
        raise ValueError(f"cov: expected a torch.Tensor of shape ({dim}, {dim}), got {type(cov).__name__}")
    if tuple(cov.shape) != (dim, dim):
        raise ValueError(f"cov: expected shape ({dim}, {dim}) to match z1's dim, got {tuple(cov.shape)}")
    if not cov.is_floating_point():
        raise ValueError(f"cov: expected a floating-point dtype, got {cov.dtype}")
    return check_finite(cov, "cov")


def tico_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    cov: torch.Tensor,
    beta: float = 0.9,
    rho: float = 8.0,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One step of the TiCo loss with its running covariance.

    zn         = z / ||z||                                        per row, both views
    new_cov    = beta * cov + (1 - beta) * sg(zn1^T zn1) / B      (no gradient)
    invariance = 1 - mean_i <zn1_i, zn2_i>
    contrast   = mean_i zn1_i^T new_cov zn1_i
    loss       = invariance + rho * contrast

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2; this view feeds the
            covariance and the contrast.
        z2: embeddings of the second view, shape (batch, dim).
        cov: the previous running covariance, shape (dim, dim); zeros at the first step. It is
            treated as a constant (detached).
        beta: weight of the previous covariance, in [0, 1) (paper: 0.9).
        rho: weight of the covariance contrast, >= 0 (paper: 8; lightly's default: 20).

    Returns:
        (terms, new_cov): terms is a dict with "loss" and the unweighted "invariance" and
        "contrast" (scalar tensors); new_cov (dim, dim) is detached, to be passed as ``cov`` at
        the next step. Both are in the dtype of the inputs promoted to at least float32.

    Examples:
        >>> z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
        >>> cov = torch.zeros(8, 8)
        >>> terms, cov = tico_loss(z1, z2, cov)
        >>> sorted(terms), tuple(cov.shape), cov.requires_grad
        (['contrast', 'invariance', 'loss'], (8, 8), False)
        >>> round(torch.trace(cov).item(), 6)  # rows on the unit sphere: tr = 1 - beta after one step
        0.1
    """
    check_pair(z1, z2)
    batch, dim = z1.shape
    cov = _check_cov(cov, dim)
    beta = _check_beta(beta)
    rho = check_non_negative(rho, "rho")
    with torch.autocast(device_type=z1.device.type, enabled=False):
        dtype = torch.promote_types(at_least_float32(z1).dtype, at_least_float32(z2).dtype)
        dtype = torch.promote_types(dtype, at_least_float32(cov).dtype)
        n1 = F.normalize(z1.to(dtype), p=2, dim=1)  # (B, d)
        n2 = F.normalize(z2.to(dtype), p=2, dim=1)  # (B, d)
        with torch.no_grad():
            batch_cov = n1.T @ n1 / batch  # (d, B) @ (B, d) -> (d, d)
            new_cov = beta * cov.detach().to(dtype) + (1.0 - beta) * batch_cov
        invariance = 1.0 - (n1 * n2).sum(dim=1).mean()
        contrast = ((n1 @ new_cov) * n1).sum(dim=1).mean()  # (B, d) @ (d, d) -> (B, d)
    return {"loss": invariance + rho * contrast, "invariance": invariance, "contrast": contrast}, new_cov


class TiCoRegularizer(nn.Module):
    """The whole TiCo loss as a stateful term that keeps the running covariance C.

    forward(z1, z2) = 1 - mean_i <zn1_i, zn2_i> + rho * mean_i zn1_i^T C_t zn1_i

    with C_t = beta C_{t-1} + (1 - beta) sg(zn1^T zn1) / B (module docstring). In training mode
    each call advances C by one step (call it once per optimizer step); in eval mode the loss is
    computed the same way but C is left untouched, so a validation pass does not perturb training.

    Use in a spec: TiCo's value already contains its transformation-invariance (alignment) term, so
    a TiCo objective is this term alone, weight 1, with no separate alignment term (adding one would
    count the alignment twice).

    The buffers ``cov`` (d, d) and ``steps`` are part of ``state_dict``, so checkpoints resume
    exactly; :meth:`reset_state` restores C = 0. ``cov`` is float32 (its entries are cosines
    averaged over the batch, in [-1, 1]); ``.double()`` switches it to float64.

    Args:
        dim: embedding dimension d.
        beta: weight of the previous covariance, in [0, 1) (paper: 0.9).
        rho: weight of the covariance contrast, >= 0 (paper: 8).

    Examples:
        >>> reg = TiCoRegularizer(dim=16)
        >>> z1, z2 = torch.randn(32, 16), torch.randn(32, 16)
        >>> reg(z1, z2).shape
        torch.Size([])
        >>> int(reg.steps), tuple(reg.cov.shape)
        (1, (16, 16))
    """

    cov: torch.Tensor
    steps: torch.Tensor

    def __init__(self, dim: int, beta: float = 0.9, rho: float = 8.0) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected a positive int, got {dim!r}")
        self.dim = dim
        self.beta = _check_beta(beta)
        self.rho = check_non_negative(rho, "rho")
        self.register_buffer("cov", torch.zeros(dim, dim, dtype=torch.float32))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def reset_state(self) -> None:
        """Restore the initial state C = 0, steps = 0."""
        self.cov.zero_()
        self.steps.zero_()

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The TiCo loss of (z1, z2) against the running covariance, advancing it in training mode.

        Args:
            z1: embeddings of the first view, shape (batch, dim), batch >= 2.
            z2: embeddings of the second view, shape (batch, dim).

        Returns:
            Scalar tensor, in the dtype of z promoted to at least float32 (and to ``cov``'s dtype).
        """
        check_embeddings(z1, "z1")
        if z1.shape[1] != self.dim:
            raise ValueError(f"z1: expected {self.dim} columns (the regularizer's dim), got shape {tuple(z1.shape)}")
        terms, new_cov = tico_loss(z1, z2, self.cov, beta=self.beta, rho=self.rho)
        if self.training:
            with torch.no_grad():
                self.cov.copy_(new_cov)  # already detached: the next step treats it as a constant
                self.steps.add_(1)
        return terms["loss"]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, beta={self.beta}, rho={self.rho}"

"""MMCR: maximize the nuclear norm of the matrix of view centroids (manifold capacity).

[0] Yerxa, Kuang, Simoncelli, Chung, 2023, "Learning Efficient Coding of Natural Images with
    Maximum Manifold Capacity Representations" (NeurIPS 2023), https://arxiv.org/abs/2303.03307
    Official code: https://github.com/ThomasYerxa/mmcr (``MMCR_Loss`` in
    mmcr/cifar_stl/loss_mmcr.py; ``MMCR_Momentum_Loss`` in mmcr/imagenet/).

For V >= 2 views z_v (B, d) of the same B images:

    zn_v = z_v / ||z_v||  row-wise                   (F.normalize(z, dim=-1), eps 1e-12)
    Z_b  = [zn_1[b]; ...; zn_V[b]]                    (V, d), the views of sample b
    C    = (1/V) sum_v zn_v                           (B, d), the centroids (not renormalized)
    centroid_nuclear_norm = ||C||_*                   = sum of C's singular values
    local_nuclear_norm    = (1/B) sum_b ||Z_b||_*
    loss = lambd * local_nuclear_norm - centroid_nuclear_norm

This is the official code exactly: ``loss = lmbda * local_nuc / batch_size - global_nuc``, the
centroid norm *not* divided by B, the local one summed over samples then divided by B; the
official default (CIFAR/STL and ImageNet scripts) is lambd = 0. Rows of norm <= 1 give
||C||_* <= (min(B, d) B)^(1/2) and ||Z_b||_* <= (min(V, d) V)^(1/2), which bound the loss.

Where covssl differs from the official code and lightly (values agree otherwise):

* the official code skips the local norms when lambd = 0 (logging 0); here they are computed and
  returned anyway. ``local_nuclear_norm`` is the mean over samples; the official log
  ``local_nuc`` is the sum (B times larger).
* gradients: the gradient of a nuclear norm is U V^T, fine for repeated singular values, but a
  zero singular value (Z_b of rank 1 when the views of b are identical, C of rank 1 for a
  collapsed batch) leaves its singular vectors arbitrary: svdvals' backward then returns an
  arbitrary (finite) subgradient that pushes the views apart along a direction chosen by the
  SVD routine. Here singular values below max(m, n) * eps * sigma_max get no gradient, which
  gives the minimum-norm subgradient U_r V_r^T (r = numerical rank), deterministic and finite.
* lightly's ``MMCRLoss`` defaults to lmda = 5e-3 (not the official 0), does not normalize the
  rows itself, and takes online and momentum outputs (B, k, d) whose views it concatenates.
  The official ImageNet loss with a momentum encoder averages the online and momentum
  centroids; that variant is not implemented here.

Distributed training: the official code gathers the views with a no-grad all_gather and puts
its own rank's tensor back, so each rank back-propagates only through its own rows: under DDP
averaging the parameter gradient is 1/world_size of the global-batch gradient (the value is
right; with Adam the scale mostly cancels). Here pass the gathered batch
(:func:`covssl.distributed.gather`): value and gradient are those of one process on it.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``mmcr`` is global: ||C||_* is a
function of the whole gathered batch and the local norms are averaged over the global B.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from covssl._checks import check_non_negative
from covssl.linalg import at_least_float32
from covssl.objectives.frossl import _check_views


def nuclear_norm(matrices: torch.Tensor) -> torch.Tensor:
    """Sum of the singular values of each matrix, (..., m, n) -> (...), with safe gradients.

    The gradient is U_r V_r^T over the singular values above max(m, n) * eps * sigma_max
    (r of them): the gradient of the nuclear norm where it exists (full rank), the minimum-norm
    subgradient where it does not. Always finite, 0 for a zero matrix.

    Args:
        matrices: a floating tensor of shape (..., m, n).

    Returns:
        Tensor of shape (...), the nuclear norms.

    Examples:
        >>> nuclear_norm(torch.diag(torch.tensor([3.0, -2.0, 0.0]))).item()
        5.0
        >>> x = torch.ones(3, 4, requires_grad=True)  # rank 1: ||x||_* = ||x||_F = sqrt(12)
        >>> grad = torch.autograd.grad(nuclear_norm(x), x)[0]  # u1 v1^T = x / ||x||_F
        >>> torch.allclose(grad, x / 12**0.5)
        True
    """
    values = torch.linalg.svdvals(matrices)  # (..., k) descending, k = min(m, n)
    tolerance = values[..., :1] * (max(matrices.shape[-2:]) * torch.finfo(values.dtype).eps)  # (..., 1)
    kept = values > tolerance  # numerically nonzero singular values
    return torch.where(kept, values, values.detach()).sum(dim=-1)  # same value, no gradient from the dropped


def mmcr_loss(views: Sequence[torch.Tensor], lambd: float = 0.0) -> dict[str, torch.Tensor]:
    """The MMCR objective over V >= 2 views, as the official ``MMCR_Loss``.

    loss = lambd * (1/B) sum_b ||Z_b||_* - ||C||_*

    with Z_b (V, d) sample b's l2-normalized views and C (B, d) their means (module docstring).

    Args:
        views: a list or tuple of V >= 2 tensors of the same shape (batch, dim), batch >= 2;
            rows are l2-normalized here.
        lambd: weight of the local (per-sample) nuclear norms, >= 0 (official: 0; lightly: 5e-3).

    Returns:
        Dict with "loss", "centroid_nuclear_norm" (||C||_*, maximized) and "local_nuclear_norm"
        ((1/B) sum_b ||Z_b||_*, minimized), scalar tensors in the promoted dtype of the views
        (at least float32).

    Examples:
        >>> gen = torch.Generator().manual_seed(0)
        >>> views = [torch.randn(16, 8, generator=gen) for _ in range(4)]
        >>> out = mmcr_loss(views)
        >>> sorted(out)
        ['centroid_nuclear_norm', 'local_nuclear_norm', 'loss']
        >>> bool(out["loss"] == -out["centroid_nuclear_norm"])  # lambd = 0
        True
        >>> same = mmcr_loss([views[0]] * 3)  # identical views: each Z_b has rank 1, norm sqrt(V)
        >>> round(same["local_nuclear_norm"].item() ** 2, 4)
        3.0
    """
    views = _check_views(views)
    lambd = check_non_negative(lambd, "lambd")
    batch = views[0].shape[0]
    with torch.autocast(device_type=views[0].device.type, enabled=False):
        dtype = functools.reduce(torch.promote_types, (at_least_float32(z).dtype for z in views))
        per_sample = torch.stack([F.normalize(z.to(dtype), dim=-1) for z in views], dim=1)  # (B, V, d)
        centroids = per_sample.mean(dim=1)  # (B, d)
        centroid_norm = nuclear_norm(centroids)
        local_norm = nuclear_norm(per_sample).sum() / batch  # (B,) summed, over the batch size
    return {
        "loss": lambd * local_norm - centroid_norm,
        "centroid_nuclear_norm": centroid_norm,
        "local_nuclear_norm": local_norm,
    }

"""EMP-SSL: many fixed-size patches per image, each pulled to the patch mean, plus a coding rate.

[0] Tong, Chen, Ma, LeCun, 2023, "EMP-SSL: Towards Self-Supervised Learning in One Training
    Epoch", https://arxiv.org/abs/2304.03977
    Official code: https://github.com/tsb0601/EMP-SSL (``Similarity_Loss``, ``cal_TCR`` in
    main.py, ``TotalCodingRate`` in loss.py, ``chunk_avg`` in evaluate.py).

For V >= 2 patch embeddings z_v (B, d) of the same B images:

    zn_v       = z_v / ||z_v||                        every row l2-normalized
    zbar       = (1/V) sum_v zn_v                     (B, d), the patch mean (not renormalized)
    invariance = (1/V) sum_v (1/B) sum_b cos(zn_vb, zbar_b)
    tcr        = (1/V) sum_v 1/2 logdet(I_d + d / (B eps) zn_v^T zn_v)
    loss       = -lambd * invariance - tcr            (both terms are maximized)

What the official code does, and where it differs from the paper, lightly and covssl:

* the embeddings are l2-normalized by the model (``encoder.forward``); here inside (a no-op then).
* the patch mean is recomputed inside ``Similarity_Loss`` from the normalized patches, is NOT
  detached (the gradient flows through it) and is not renormalized; the cosine makes renormalizing
  irrelevant anyway. The cosine is averaged over the samples, then over the patches.
* eps is NOT squared: a = d / (B eps), eps = 0.2. The paper writes d / (B eps^2) (MCR^2's
  convention) and so does covssl's :func:`~covssl.objectives.rate_distortion.coding_rate`, so
  ``emp_ssl_loss(eps=e)["tcr"]`` equals the mean of ``coding_rate(zn_v, eps=sqrt(e))``.
* the official loss is ``patch_sim * (-invariance) + tcr_weight * (-tcr)``, 200 and 1; lightly's
  ``EMPSSLLoss`` (same eps, same cosine) returns ``+tcr``, i.e. it minimizes the coding rate,
  which is a sign error that we do not follow. Lightly also does not normalize the rows.
* the official code takes ``torch.logdet`` of the d x d matrix per patch (a NaN on failure); here
  the V log-dets are one batched Cholesky on the smaller side (B x B when B < d, by Sylvester's
  identity), which raises ValueError instead of returning NaN.

Scope (``TermDef.scope``, see :mod:`covssl.distributed`): global. The invariance is an average over
samples, but each patch's coding rate uses the whole batch (a = d / (B eps) with B global); pass
the gathered batch (the official code is single-process ``DataParallel``, so one batch of 100).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from covssl._checks import check_embeddings, check_non_negative, check_positive
from covssl.linalg import Path, at_least_float32, logdet_spd, use_sample_side


def _check_views(views: object, name: str = "views", min_views: int = 2, min_batch: int = 2) -> list[torch.Tensor]:
    """A list or tuple of at least ``min_views`` finite (batch, dim) tensors of the same shape."""
    if not isinstance(views, (list, tuple)):
        raise ValueError(f"{name}: expected a list or tuple of (batch, dim) tensors, got {type(views).__name__}")
    if len(views) < min_views:
        raise ValueError(f"{name}: expected at least {min_views} views, got {len(views)}")
    for index, z in enumerate(views):
        check_embeddings(z, f"{name}[{index}]", min_batch=min_batch)
        if z.shape != views[0].shape:
            raise ValueError(
                f"{name}[{index}]: expected the same shape as {name}[0] {tuple(views[0].shape)}, got {tuple(z.shape)}"
            )
    return list(views)


def _common_dtype(views: Sequence[torch.Tensor]) -> torch.dtype:
    """float32 or higher: the promotion of the (upcast) dtypes of the views."""
    return functools.reduce(torch.promote_types, (at_least_float32(z).dtype for z in views))


def emp_ssl_loss(
    views: Sequence[torch.Tensor],
    eps: float = 0.2,
    lambd: float = 200.0,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """The EMP-SSL objective over V >= 2 patch embeddings, as the official training code.

    invariance = mean_v mean_b cos(zn_vb, zbar_b),   zbar = mean_v zn_v
    tcr        = mean_v 1/2 logdet(I + d / (B eps) zn_v^T zn_v)
    loss       = -lambd * invariance - tcr

    with zn_v the patch embeddings with unit-norm rows (module docstring).

    Args:
        views: a list or tuple of V >= 2 tensors of the same shape (batch, dim), batch >= 2:
            the embeddings of V random patches of the same B images.
        eps: distortion of the total coding rate, > 0, used unsquared as in the official code
            (official: 0.2; the paper's eps^2).
        lambd: weight of the invariance term, >= 0 (official ``--patch_sim``: 200).
        path: "auto" (B x B log-dets when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Dict of scalar tensors: "loss" (to minimize); "invariance", the mean cosine of each
        patch to the patch mean, in [-1, 1], 1 when every patch is the same (to maximize, the
        official ``z_sim``); "tcr", the mean coding rate of the patches (to maximize). Float32
        for half inputs, else the inputs' dtype.

    Raises:
        ValueError: on bad input, or when a log-det's matrix is not numerically positive definite.

    Examples:
        >>> views = [torch.randn(16, 32) for _ in range(4)]
        >>> out = emp_ssl_loss(views)
        >>> sorted(out)
        ['invariance', 'loss', 'tcr']
        >>> same = emp_ssl_loss([views[0]] * 4)
        >>> round(same["invariance"].item(), 6)
        1.0
    """
    views = _check_views(views)
    eps = check_positive(eps, "eps")
    lambd = check_non_negative(lambd, "lambd")
    batch, dim = views[0].shape
    sample_side = use_sample_side(batch, dim, path)  # validates ``path`` before any work
    with torch.autocast(device_type=views[0].device.type, enabled=False):
        dtype = _common_dtype(views)
        zn = F.normalize(torch.stack([z.to(dtype) for z in views]), p=2, dim=-1)  # (V, B, d)
        mean_direction = F.normalize(zn.mean(dim=0), p=2, dim=-1)  # (B, d): cos is scale-invariant
        invariance = (zn * mean_direction).sum(dim=-1).mean()  # mean over (V, B) of the cosines
        if sample_side:
            gram = zn @ zn.transpose(1, 2)  # (V, B, d) @ (V, d, B) -> (V, B, B)
        else:
            gram = zn.transpose(1, 2) @ zn  # (V, d, B) @ (V, B, d) -> (V, d, d)
        eye = torch.eye(gram.shape[-1], dtype=dtype, device=gram.device)
        # one batched Cholesky (and one host sync) for all V patches
        rates = 0.5 * logdet_spd(eye + (dim / (batch * eps)) * gram, name="I + d / (B eps) * Gram")  # (V,)
        tcr = rates.mean()
    return {"loss": -lambd * invariance - tcr, "invariance": invariance, "tcr": tcr}


def bag_of_features(views: Sequence[torch.Tensor], normalize: bool = False) -> torch.Tensor:
    """EMP-SSL's evaluation representation: the mean of the patch features of each image.

    bag_b = (1/V) sum_v z_vb

    The official evaluation (``chunk_avg(z_pre, test_patches)`` in evaluate.py, 128 patches)
    averages the RAW features, not normalized ones: ``z_pre`` is the encoder's 4096-d output of the
    first projector block (Linear + BatchNorm + ReLU after the ResNet-18), not the normalized
    projection z. The linear probe is trained on this mean as is; the k-NN classifier l2-normalizes
    it (cosine similarity), which ``normalize=True`` reproduces (``chunk_avg(..., normalize=True)``).

    Args:
        views: a list or tuple of V >= 1 tensors of the same shape (batch, dim), batch >= 1: the
            features of V patches of the same images.
        normalize: l2-normalize each averaged row (official default: False).

    Returns:
        Tensor (batch, dim) in the inputs' dtype, differentiable.

    Examples:
        >>> views = [torch.ones(2, 3), 3 * torch.ones(2, 3)]
        >>> bag_of_features(views)
        tensor([[2., 2., 2.],
                [2., 2., 2.]])
    """
    views = _check_views(views, min_views=1, min_batch=1)
    if not isinstance(normalize, bool):
        raise ValueError(f"normalize: expected a bool, got {normalize!r}")
    dtype = functools.reduce(torch.promote_types, (z.dtype for z in views))
    mean = torch.stack([z.to(dtype) for z in views]).mean(dim=0)  # (V, B, d) -> (B, d)
    return F.normalize(mean, p=2, dim=-1) if normalize else mean

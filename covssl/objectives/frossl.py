"""FroSSL: the log Frobenius norm of each view's trace-normalized Gram matrix plus a view-mean MSE.

[0] Skean, Dhakal, Jacobs, Sanchez Giraldo, 2023, "FroSSL: Frobenius Norm Minimization for
    Self-Supervised Learning" (ECCV 2024 as "... for Efficient Multiview Self-Supervised
    Learning"), https://arxiv.org/abs/2310.02903
    Official code: https://github.com/OFSkean/FroSSL (``multiview_frossl_loss_func`` in
    solo/losses/frossl.py); lightly's ``FroSSLLoss`` reproduces it.

For V >= 2 views z_v (B, d) of the same images:

    zn_v   = z_v with every column scaled to unit l2 norm over the batch   (F.normalize(z, dim=0))
    K_v    = zn_v^T zn_v                                                  (d, d)
    zbar   = (1/V) sum_v zn_v                                             (B, d), the mean view
    regularizer = sum_v 2 log ||K_v / tr K_v||_F                          (= log of the squared norm)
    invariance  = sum_v V d mse(zn_v, zbar) = (V/B) sum_v ||zn_v - zbar||_F^2
    loss        = regularizer + invariance_weight * invariance

Each view's term lies in [-log r, 0] (r = rank K_v <= min(B, d)): it is minus the order-2 Renyi
entropy of K_v's normalized spectrum, 0 for a collapsed (rank-1) view and -log min(B, d) for a
flat spectrum. ||K||_F and tr K are the same for zn^T zn (d x d) and zn zn^T (B x B), and
tr K = ||zn||_F^2, so the smaller Gram matrix is formed: O(B^2 d) when B < d.

Where covssl differs from the official code (values agree to rounding otherwise):

* the official code divides by ``tr(K).item()`` (no gradient through the trace); here the trace
  keeps its gradient, which is zero anyway: tr K = ||zn||_F^2 = d, every column having unit norm.
* a view whose every entry is zero gives NaN there (log 0 / 0); here its term is 0, the value of a
  collapsed view, with a finite gradient.
* the official two-view function ``frossl_loss_func`` (kept "for compatibility with the paper",
  marked deprecated) first standardizes each column, (z - mean) / std, i.e. it also centers;
  otherwise, at V = 2, it equals this loss, since both reduce the invariance to ||zn_1 - zn_2||^2 / B.
* the author's later port to solo-learn (PR #390, not merged) takes a single mse over the stacked
  views, an invariance V times smaller than this one (half at V = 2).

Scope (``TermDef.scope``, see :mod:`covssl.distributed`): global. The column norms, hence every
zn_v, and K_v use the whole batch; pass the gathered batch to match one process (the official code
evaluates it per rank).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from covssl._checks import check_embeddings, check_non_negative, check_pair
from covssl.linalg import Path, at_least_float32, use_sample_side


def _log_normalized_frobenius_sq(zn: torch.Tensor, sample_side: bool) -> torch.Tensor:
    """log(||K||_F^2 / (tr K)^2) for K = zn^T zn, computed on the (B, B) side if asked; 0 if zn = 0."""
    gram = zn @ zn.T if sample_side else zn.T @ zn  # (B, d) @ (d, B) -> (B, B) or (d, B) @ (B, d) -> (d, d)
    trace = zn.square().sum()  # tr(Z^T Z) = tr(Z Z^T) = ||Z||_F^2
    has_mass = trace > 0
    safe_trace = torch.where(has_mass, trace, torch.ones_like(trace))
    ratio = (gram / safe_trace).square().sum()  # in [1/rank, 1]: no underflow once trace > 0
    return torch.log(torch.where(has_mass, ratio, torch.ones_like(ratio)))


def frossl_regularizer(z: torch.Tensor, path: Path = "auto") -> torch.Tensor:
    """FroSSL's per-view term 2 log ||K / tr K||_F, K = zn^T zn, zn = column-normalized z.

    Minimizing it maximizes the order-2 Renyi entropy -log ||K / tr K||_F^2 of the view.

    Args:
        z: embeddings of one view, shape (batch, dim), batch >= 2.
        path: "auto" (B x B when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Scalar tensor in [-log min(B, d), 0]; 0 for a collapsed view.

    Examples:
        >>> import math
        >>> z = torch.linalg.qr(torch.randn(64, 8))[0]  # orthonormal columns: flat spectrum
        >>> round(frossl_regularizer(z).item() / -math.log(8), 4)
        1.0
    """
    check_embeddings(z)
    batch, dim = z.shape
    sample_side = use_sample_side(batch, dim, path)
    with torch.autocast(device_type=z.device.type, enabled=False):
        zn = F.normalize(at_least_float32(z), p=2, dim=0)  # (B, d), unit columns
        return _log_normalized_frobenius_sq(zn, sample_side)


def _check_views(views: object) -> list[torch.Tensor]:
    if not isinstance(views, (list, tuple)):
        raise ValueError(f"views: expected a list or tuple of (batch, dim) tensors, got {type(views).__name__}")
    if len(views) < 2:
        raise ValueError(f"views: expected at least 2 views, got {len(views)}")
    for index, z in enumerate(views):
        check_embeddings(z, f"views[{index}]")
        if z.shape != views[0].shape:
            raise ValueError(
                f"views[{index}]: expected the same shape as views[0] {tuple(views[0].shape)}, got {tuple(z.shape)}"
            )
    return list(views)


def frossl_loss(
    views: Sequence[torch.Tensor],
    invariance_weight: float = 1.0,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """The FroSSL objective over V >= 2 views, as the official ``multiview_frossl_loss_func``.

    regularizer = sum_v 2 log ||K_v / tr K_v||_F,   K_v = zn_v^T zn_v
    invariance  = sum_v V d mse(zn_v, zbar),        zbar = mean_v zn_v
    loss        = regularizer + invariance_weight * invariance

    with zn_v the view with unit-norm columns (module docstring).

    Args:
        views: a list or tuple of V >= 2 tensors of the same shape (batch, dim), batch >= 2.
        invariance_weight: weight of the invariance term, >= 0 (official: 1).
        path: "auto" (B x B Gram matrices when B < d), "feature" (d x d) or "sample" (B x B).

    Returns:
        Dict with "loss" and the unweighted "regularizer" and "invariance" terms (scalar tensors).
        The regularizer is <= 0 and reaches -V log min(B, d) for flat spectra.

    Examples:
        >>> views = [torch.randn(32, 16) for _ in range(4)]
        >>> out = frossl_loss(views)
        >>> sorted(out)
        ['invariance', 'loss', 'regularizer']
        >>> bool(out["regularizer"] < 0)
        True
    """
    views = _check_views(views)
    invariance_weight = check_non_negative(invariance_weight, "invariance_weight")
    num_views = len(views)
    batch, dim = views[0].shape
    sample_side = use_sample_side(batch, dim, path)  # validates ``path`` before any work
    with torch.autocast(device_type=views[0].device.type, enabled=False):
        dtype = functools.reduce(torch.promote_types, (at_least_float32(z).dtype for z in views))
        normalized = torch.stack([F.normalize(z.to(dtype), p=2, dim=0) for z in views])  # (V, B, d)
        regularizer = sum(_log_normalized_frobenius_sq(zn, sample_side) for zn in normalized)
        mean_view = normalized.mean(dim=0)  # (B, d)
        # sum over views of V * d * mse(zn_v, zbar), each mse a mean over B * d entries
        invariance = num_views * dim * (normalized - mean_view).square().mean(dim=(1, 2)).sum()
    return {
        "loss": regularizer + invariance_weight * invariance,
        "regularizer": regularizer,
        "invariance": invariance,
    }


def frossl_pair_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float = 1.0,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """:func:`frossl_loss` of the two views (z1, z2), for registration as a pair term.

    At V = 2 the invariance is ||zn_1 - zn_2||_F^2 / B.

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        invariance_weight: weight of the invariance term, >= 0 (official: 1).
        path: "auto", "feature" or "sample", as in :func:`frossl_loss`.

    Returns:
        The dict of :func:`frossl_loss`.

    Examples:
        >>> z1, z2 = torch.randn(8, 32), torch.randn(8, 32)
        >>> torch.equal(frossl_pair_loss(z1, z2)["loss"], frossl_loss([z1, z2])["loss"])
        True
    """
    check_pair(z1, z2)
    return frossl_loss([z1, z2], invariance_weight=invariance_weight, path=path)

"""LiDAR: the rank of the linear discriminant of "which image is this view of".

[0] Thilak, Huang, Saremi, Dinh, Goh, Nakkiran, Susskind, Littwin, 2024, "LiDAR: Sensing
    Linear Probing Performance in Joint Embedding SSL Architectures", ICLR 2024,
    https://arxiv.org/abs/2312.04000

RankMe and the spectrum-based metrics (:mod:`covssl.diagnostics.quality`) count every direction
that varies; LiDAR counts only the directions along which different images differ more than the
augmented views of one image, the information the SSL task itself uses. It needs V >= 2 views of
each of N images. Computed in float64 without autograd; a Python float out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from covssl._checks import check_embeddings, check_non_negative, check_positive
from covssl.diagnostics._common import as_float64


def _stack_views(views: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Views as one float64 tensor of shape (V, N, d), checked."""
    if isinstance(views, torch.Tensor):
        if views.ndim != 3:
            raise ValueError(
                f"views: expected a (V, N, d) tensor or a sequence of V (N, d) tensors, got shape {tuple(views.shape)}"
            )
        views = list(views.unbind(0))
    if not isinstance(views, Sequence) or len(views) < 2:
        count = len(views) if isinstance(views, Sequence) else type(views).__name__
        raise ValueError(f"views: expected at least 2 views of each image, got {count}")
    for v, view in enumerate(views):
        check_embeddings(view, f"views[{v}]")
        if view.shape != views[0].shape:
            raise ValueError(f"views[{v}]: expected the shape of views[0] {tuple(views[0].shape)}, got {tuple(view.shape)}")
    return torch.stack([as_float64(view) for view in views])  # (V, N, d)


def lidar(views: torch.Tensor | Sequence[torch.Tensor], delta: float = 1e-4, eps: float = 1e-8) -> float:
    """LiDAR [0]: the effective rank of the LDA matrix of the surrogate task "which image is this view of".

    Each source image n = 1..N is a class, its V augmented views z_nv its samples:

        mu_n    = (1/V) sum_v z_nv,   mu = (1/N) sum_n mu_n
        Sigma_b = sum_n (mu_n - mu)(mu_n - mu)^T / (N - 1)                    between images
        Sigma_w = sum_n sum_v (z_nv - mu_n)(z_nv - mu_n)^T / (N (V - 1)) + delta I   within
        lambda  = eig( Sigma_w^{-1/2} Sigma_b Sigma_w^{-1/2} )
        p       = (lambda + eps) / sum (lambda + eps),   LiDAR = exp( -sum p log p )

    Directions along which images differ much more than the views of one image count fully;
    directions that only carry augmentation noise count little: unlike RankMe, a feature that
    varies but does not tell images apart does not raise LiDAR ([0] uses it to pick hyper-parameters). Sigma_w^{-1/2} comes from the
    eigendecomposition of the symmetric Sigma_w (d x d, float64).

    Healthy: close to min(N - 1, d). Views that are exact copies leave Sigma_w = delta I, and
    LiDAR is the effective rank of Sigma_b. Collapsed: about 1 (one direction tells images
    apart), but note that a *complete* collapse (every embedding equal) gives lambda = 0 and
    so p uniform and LiDAR = d: read LiDAR together with :func:`~covssl.diagnostics.quality.rankme` or ``effective_rank``.

    Args:
        views: (V, N, d) tensor, or a sequence of V tensors of shape (N, d) whose row n comes
            from image n; V >= 2, N >= 2.
        delta: ridge added to Sigma_w, >= 0 ([0]'s default 1e-4).
        eps: added to every eigenvalue before normalizing, > 0 ([0]'s default 1e-8).

    Returns:
        Python float in [1, d].

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> images = torch.randn(500, 4, generator=g, dtype=torch.float64)
        >>> noise = 1e-3 * torch.randn(3, 500, 4, generator=g, dtype=torch.float64)
        >>> round(lidar(images + noise), 1)  # 4 directions tell images apart
        4.0
    """
    stacked = _stack_views(views)  # (V, N, d)
    delta = check_non_negative(delta, "delta")
    eps = check_positive(eps, "eps")
    num_views, samples, dim = stacked.shape
    image_means = stacked.mean(dim=0)  # (N, d)
    between = image_means - image_means.mean(dim=0, keepdim=True)  # (N, d)
    sigma_b = between.T @ between / (samples - 1)  # (d, d)
    within = (stacked - image_means).reshape(-1, dim)  # (V N, d)
    sigma_w = within.T @ within / (samples * (num_views - 1)) + delta * torch.eye(dim, dtype=torch.float64)
    if not (bool(torch.isfinite(sigma_b).all()) and bool(torch.isfinite(sigma_w).all())):
        raise ValueError("views: entries too large to square in float64 (the covariances overflow)")
    w_values, w_vectors = torch.linalg.eigh(sigma_w)  # Sigma_w = U diag(w) U^T
    if float(w_values[0]) <= 0.0:
        raise ValueError(
            "views: the within-image covariance is singular (views that are exact copies, or N (V - 1) < d); "
            f"pass delta > 0 (got delta = {delta})"
        )
    inverse_root = (w_vectors * w_values.rsqrt()) @ w_vectors.T  # Sigma_w^{-1/2}, (d, d)
    lda = inverse_root @ sigma_b @ inverse_root
    lam = torch.linalg.eigvalsh((lda + lda.T) / 2).clamp_min(0.0)  # (d,)
    p = (lam + eps) / (lam + eps).sum()
    return math.exp(float(-(p * torch.log(p)).sum()))

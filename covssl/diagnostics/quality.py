"""Label-free quality metrics: which run is better, without labels.

[0] Garrido, Balestriero, Najman, LeCun, 2023, "RankMe: Assessing the Downstream Performance
    of Pretrained Self-Supervised Representations by Their Rank", ICML 2023,
    https://arxiv.org/abs/2210.02885
[1] Agrawal, Mondal, Ghosh, Richards, 2022, "alpha-ReQ: Assessing Representation Quality in
    Self-Supervised Learning by measuring eigenspectrum decay", NeurIPS 2022,
    https://openreview.net/forum?id=ii9X4vtZGTZ
[2] He, Ozay, 2022, "Exploring the Gap between Collapsed & Whitened Features in
    Self-Supervised Learning", ICML 2022, https://arxiv.org/abs/2111.12062 (NESum)
[3] Rudelson, Vershynin, 2007, "Sampling from large matrices: an approach through geometric
    functional analysis", J. ACM 54(4) (stable rank)
[4] Thilak, Huang, Saremi, Dinh, Goh, Nakkiran, Susskind, Littwin, 2024, "LiDAR: Sensing
    Linear Probing Performance in Joint Embedding SSL Architectures", ICLR 2024,
    https://arxiv.org/abs/2312.04000

The collapse diagnostics (``spectrum``, ``decomposition``) say whether a run collapsed; these
rank healthy runs against each other. RankMe [0] and LiDAR [4] were shown to track the linear
probe's accuracy *across the hyper-parameters of one method*; across methods the ordering is
not promised (RankMe's paper says so). alpha-ReQ [1] reads the decay of the spectrum: neither
too flat (noise) nor too steep (collapse). All are Python floats computed in float64 without
autograd; the scale-invariant ones divide the batch by its largest entry first, so that
embeddings of any finite magnitude give the same value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from covssl._checks import check_embeddings, check_non_negative, check_positive
from covssl.diagnostics._common import as_float64, centered_singular_values
from covssl.objectives.wasserstein_uniformity import w2_uniformity as _w2_uniformity

# alpha-ReQ [1] fits ranks 11..100: the head of the spectrum is dominated by a few directions
# and the tail beyond 100 by estimation noise.
ALPHA_REQ_RANKS = (11, 100)
# RankMe [0] is evaluated on 25,600 samples in the paper; more rows barely move it.
RANKME_SAMPLES = 25_600


def _unit_scale(z64: torch.Tensor) -> torch.Tensor:
    """z divided by its largest absolute entry (unchanged when all zero): no overflow when squared."""
    largest = z64.abs().max()
    return z64 / largest if largest > 0 else z64


def rankme(z: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe [0]: the smooth rank of the *uncentered* embedding matrix.

    RankMe(Z) = exp( -sum_k p_k log p_k ),  p_k = sigma_k / ||sigma||_1 + eps,

    with sigma_1..sigma_K (K = min(N, d)) the singular values of Z itself, not of Z - mean,
    exactly as [0] publishes it (covssl's ``effective_rank`` centers the batch and adds no
    epsilon, and so gives other numbers). The p_k do not sum to exactly 1: that is the
    published formula. An all-zero Z has no direction: sigma / ||sigma||_1 is taken as 0,
    giving exp(-K eps log eps), about 1.

    Healthy: close to min(N, d) (higher is better within one method, [0]).
    Collapsed: about 1 (every row the same vector, or all zero).

    Args:
        z: embeddings, shape (N, d), N >= 2. [0] evaluates N = 25,600 (``RANKME_SAMPLES``).
        eps: the published epsilon, > 0.

    Returns:
        Python float in about [1, min(N, d)].

    Examples:
        >>> round(rankme(torch.eye(4)), 4)  # four equal singular values
        4.0
        >>> round(rankme(torch.ones(6, 3)), 4)  # one direction
        1.0
    """
    check_embeddings(z, "z")
    eps = check_positive(eps, "eps")
    sigma = torch.linalg.svdvals(_unit_scale(as_float64(z)))  # (K,), descending
    total = float(sigma.sum())
    p = (sigma / total if total > 0 else torch.zeros_like(sigma)) + eps
    return math.exp(float(-(p * torch.log(p)).sum()))


def _centered_eigenvalues(z: torch.Tensor) -> torch.Tensor:
    """Covariance eigenvalues s_i^2 / (N - 1) of the unit-scaled batch, round-off ones set to 0.

    Returns min(N, d) values, descending (the other d - N eigenvalues are 0 when N < d).
    """
    scaled = _unit_scale(as_float64(z))
    s, tol = centered_singular_values(scaled)
    s = torch.where(s > tol, s, torch.zeros_like(s))
    return s.pow(2) / (z.shape[0] - 1)


def nesum(z: torch.Tensor) -> float:
    """NESum [2]: the covariance eigenvalues summed after dividing by the largest.

    NESum(Z) = sum_i lambda_i / lambda_1,  lambda_1 >= ... >= lambda_d the eigenvalues of the
    centered covariance (Z - mean)^T (Z - mean) / (N - 1).

    It counts directions weighted by their variance relative to the strongest: d for whitened
    data, k for k equal directions. On the centered batch it equals :func:`stable_rank`.
    All-zero covariance (complete collapse): 0.0. Round-off-level eigenvalues count as 0.

    Healthy: close to min(N - 1, d). Collapsed: 0.0 (complete), about k (rank k).

    Args:
        z: embeddings, shape (N, d), N >= 2.

    Returns:
        Python float in {0} U [1, min(N - 1, d)].

    Examples:
        >>> z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
        >>> nesum(z)  # variances 8/3 and 2/3: 1 + 1/4
        1.25
    """
    check_embeddings(z, "z")
    eigenvalues = _centered_eigenvalues(z)
    largest = float(eigenvalues[0])
    return float(eigenvalues.sum()) / largest if largest > 0 else 0.0


def stable_rank(z: torch.Tensor) -> float:
    """Stable rank [3] of the centered batch: ||Zc||_F^2 / ||Zc||_2^2.

    Zc = Z - mean; ||.||_F the Frobenius norm, ||.||_2 the largest singular value. It is a
    continuous lower bound of the rank (rank Zc >= stable rank >= 1 for Zc != 0) and equals
    :func:`nesum` (sum_i s_i^2 / s_1^2 = sum_i lambda_i / lambda_1); this one is computed from
    the two matrix norms, without an eigendecomposition of the covariance. All-zero Zc: 0.0.

    Healthy: close to min(N - 1, d). Collapsed: 0.0 (complete), at most k (rank k).

    Args:
        z: embeddings, shape (N, d), N >= 2.

    Returns:
        Python float in {0} U [1, min(N - 1, d)].

    Examples:
        >>> round(stable_rank(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])), 6)
        2.0
    """
    check_embeddings(z, "z")
    scaled = _unit_scale(as_float64(z))
    s, tol = centered_singular_values(scaled)
    s = torch.where(s > tol, s, torch.zeros_like(s))
    centered = scaled - scaled.mean(dim=0, keepdim=True)
    frobenius_sq = float(torch.linalg.matrix_norm(centered, ord="fro") ** 2)
    spectral_sq = float(s[0]) ** 2
    return frobenius_sq / spectral_sq if spectral_sq > 0 else 0.0


def alpha_req(z: torch.Tensor, ranks: tuple[int, int] = ALPHA_REQ_RANKS) -> dict[str, float]:
    """alpha-ReQ [1]: the power-law exponent of the covariance spectrum, lambda_i ~ i^(-alpha).

    With lambda_1 >= lambda_2 >= ... the eigenvalues of the centered covariance, a weighted
    least-squares line is fitted to y_i = log lambda_i against x_i = log i over the ranks
    i = first..last (11..100 by default, as [1]), with weights w_i = 1 / i (each octave of ranks
    counts about equally):

        slope = sum_i w_i (x_i - x_w)(y_i - y_w) / sum_i w_i (x_i - x_w)^2,   alpha = -slope

    x_w, y_w the weighted means. R^2 is the fit's weighted coefficient of determination,
    1 - sum_i w_i (y_i - yhat_i)^2 / sum_i w_i (y_i - y_w)^2 (1.0 for an exact power law).

    alpha and R^2 do not change when z is scaled.

    Healthy: alpha near 1 ([1] finds the best linear probes there); alpha << 1 is a flat,
    noise-like spectrum (white noise: about 0). Collapsed: alpha >> 1, a steep spectrum; one
    that reaches 0 inside the fitted ranks (dimensional collapse) gives alpha = inf, R^2 = nan.

    Args:
        z: embeddings, shape (N, d), with min(N - 1, d) >= last (the fit needs that many
            nonzero eigenvalues).
        ranks: (first, last), 1-based and inclusive, 1 <= first < last.

    Returns:
        {"alpha": float, "r2": float}.

    Raises:
        ValueError: too few samples or dimensions for the ranks fitted.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.randn(400, 128, generator=g, dtype=torch.float64)
        >>> u, _ = torch.linalg.qr(a - a.mean(0))  # centered orthonormal columns
        >>> z = u * torch.arange(1, 129, dtype=torch.float64) ** -0.75  # lambda_i ~ i^-1.5
        >>> {k: round(v, 6) for k, v in alpha_req(z).items()}
        {'alpha': 1.5, 'r2': 1.0}
    """
    check_embeddings(z, "z")
    first, last = ranks
    if not (isinstance(first, int) and isinstance(last, int) and 1 <= first < last):
        raise ValueError(f"ranks: expected integers 1 <= first < last, got {ranks!r}")
    samples, dim = z.shape
    if min(samples - 1, dim) < last:
        raise ValueError(
            f"z: alpha_req fits eigenvalues {first}..{last} and needs min(N - 1, d) >= {last}, "
            f"got N = {samples}, d = {dim}"
        )
    eigenvalues = _centered_eigenvalues(z)[first - 1 : last]  # ranks first..last
    if float(eigenvalues[-1]) <= 0.0:
        return {"alpha": math.inf, "r2": math.nan}
    rank = torch.arange(first, last + 1, dtype=torch.float64)
    x, y, w = torch.log(rank), torch.log(eigenvalues), 1.0 / rank
    w = w / w.sum()
    x_mean, y_mean = float((w * x).sum()), float((w * y).sum())
    dx, dy = x - x_mean, y - y_mean
    slope = float((w * dx * dy).sum()) / float((w * dx * dx).sum())
    residual = dy - slope * dx
    spread = float((w * dy * dy).sum())
    r2 = 1.0 - float((w * residual * residual).sum()) / spread if spread > 0 else 1.0
    return {"alpha": -slope, "r2": r2}


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
    """LiDAR [4]: the effective rank of the LDA matrix of the surrogate task "which image is this view of".

    Each source image n = 1..N is a class, its V augmented views z_nv its samples:

        mu_n    = (1/V) sum_v z_nv,   mu = (1/N) sum_n mu_n
        Sigma_b = sum_n (mu_n - mu)(mu_n - mu)^T / (N - 1)                    between images
        Sigma_w = sum_n sum_v (z_nv - mu_n)(z_nv - mu_n)^T / (N (V - 1)) + delta I   within
        lambda  = eig( Sigma_w^{-1/2} Sigma_b Sigma_w^{-1/2} )
        p       = (lambda + eps) / sum (lambda + eps),   LiDAR = exp( -sum p log p )

    Directions along which images differ much more than the views of one image count fully;
    directions that only carry augmentation noise count little: unlike RankMe, a feature that
    varies but does not tell images apart does not raise LiDAR. Sigma_w^{-1/2} comes from the
    eigendecomposition of the symmetric Sigma_w (d x d, float64).

    Healthy: close to min(N - 1, d). Views that are exact copies leave Sigma_w = delta I, and
    LiDAR is the effective rank of Sigma_b. Collapsed: about 1 (one direction tells images
    apart), but note that a *complete* collapse (every embedding equal) gives lambda = 0 and
    so p uniform and LiDAR = d: read LiDAR together with :func:`rankme` or ``effective_rank``.

    Args:
        views: (V, N, d) tensor, or a sequence of V tensors of shape (N, d) whose row n comes
            from image n; V >= 2, N >= 2.
        delta: ridge added to Sigma_w, >= 0 ([4]'s default 1e-4).
        eps: added to every eigenvalue before normalizing, > 0 ([4]'s default 1e-8).

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


def w2_uniformity(z: torch.Tensor) -> float:
    """Fang et al.'s W2 uniformity (:func:`covssl.objectives.w2_uniformity`) as a metric.

    W2 = sqrt(||mu||^2 + 1 + tr Sigma - (2 / sqrt(d)) tr Sigma^{1/2}) of the l2-normalized rows,
    evaluated in float64 without autograd.

    Healthy: about 0.3 for N = 4d points uniform on the sphere (0 at the optimum).
    Collapsed: sqrt(2) (every row the same direction).

    Args:
        z: embeddings, shape (N, d), N >= 2.

    Returns:
        Python float in [0, sqrt(2)].

    Examples:
        >>> round(w2_uniformity(torch.ones(8, 4)), 6)
        1.414214
    """
    check_embeddings(z, "z")
    with torch.no_grad():
        return float(_w2_uniformity(_unit_scale(as_float64(z))))


def label_free_metrics(z: torch.Tensor) -> dict[str, float]:
    """The cheap per-batch metrics in one dict: rankme, nesum, stable_rank, w2_uniformity and,
    when min(N - 1, d) >= 100, alpha_req and alpha_req_r2 (the keys of ``epochs.csv``).

    Args:
        z: embeddings, shape (N, d), N >= 2; RankMe uses the first ``RANKME_SAMPLES`` rows.

    Returns:
        Dict of Python floats.

    Examples:
        >>> sorted(label_free_metrics(torch.randn(16, 4)))  # too small for alpha-ReQ
        ['nesum', 'rankme', 'stable_rank', 'w2_uniformity']
    """
    check_embeddings(z, "z")
    metrics = {
        "rankme": rankme(z[:RANKME_SAMPLES]),
        "nesum": nesum(z),
        "stable_rank": stable_rank(z),
        "w2_uniformity": w2_uniformity(z),
    }
    if min(z.shape[0] - 1, z.shape[1]) >= ALPHA_REQ_RANKS[1]:
        fit = alpha_req(z)
        metrics["alpha_req"], metrics["alpha_req_r2"] = fit["alpha"], fit["r2"]
    return metrics

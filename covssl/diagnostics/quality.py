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
[4] Fang, Li, Sun, Wang, 2024, "Rethinking the Uniformity Metric in Self-Supervised
    Learning", ICLR 2024, https://arxiv.org/abs/2403.00642 (W2 uniformity)

LiDAR (Thilak et al. 2024), which needs several views of each image, is in
:mod:`covssl.diagnostics.lidar`.

The collapse diagnostics (``spectrum``, ``decomposition``) say whether a run collapsed; these
rank healthy runs against each other. RankMe [0] and LiDAR were shown to track the linear
probe's accuracy *across the hyper-parameters of one method*; across methods the ordering is
not promised (RankMe's paper says so). alpha-ReQ [1] reads the decay of the spectrum: neither
too flat (noise) nor too steep (collapse). All are Python floats computed in float64 without
autograd; the scale-invariant ones divide the batch by its largest entry first, so that
embeddings of any finite magnitude give the same value.
"""

from __future__ import annotations

import math
import torch

from covssl._checks import check_embeddings, check_positive
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

"""All collapse diagnostics of a batch in one dict of Python numbers.

[0] Roy, Vetterli, 2007, "The effective rank: a measure of effective dimensionality",
    EUSIPCO 2007, https://infoscience.epfl.ch/record/110188/files/RoyV07.pdf
[1] Chen, He, 2021, "Exploring Simple Siamese Representation Learning",
    https://arxiv.org/abs/2011.10566
[2] Zhang et al., 2022, "How does SimSiam avoid collapse without negative samples?",
    https://arxiv.org/abs/2203.16262
[3] Wang, Isola, 2020, "Understanding Contrastive Representation Learning through Alignment
    and Uniformity on the Hypersphere", https://arxiv.org/abs/2005.10242
[4] The label-free quality metrics (RankMe, alpha-ReQ, NESum, stable rank, LiDAR, W2
    uniformity) and their papers: :mod:`covssl.diagnostics.quality`

Every value sits next to its reference values, "<name>_healthy" and "<name>_collapsed", so a
report can be read without the docstrings. Values are Python floats, ``inf`` and ``nan``
included, so that ``report["condition_number"] > 1e3`` works on a collapsed run. JSON has no
infinity or NaN: :func:`json_safe` writes them as the strings "inf", "-inf" and "nan" (which
float() reads back) when a report is saved.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from covssl._checks import check_embeddings, check_pair, check_positive
from covssl.diagnostics.decomposition import center_residual, std_of_normalized
from covssl.diagnostics.hypersphere import alignment, uniformity
from covssl.diagnostics.lidar import lidar
from covssl.diagnostics.quality import ALPHA_REQ_RANKS, RANKME_SAMPLES, alpha_req, nesum, rankme, stable_rank
from covssl.diagnostics.quality import w2_uniformity
from covssl.diagnostics.spectrum import isotropy, spectrum
from covssl.diagnostics.taylor import coding_rate_terms


def json_safe(value: Any) -> Any:
    """Copy of value with non-finite floats replaced by "inf", "-inf" or "nan".

    Recurses into dicts (keys made str), lists and tuples (made lists); converts 0-d tensors
    to Python numbers and other tensors to nested lists. Everything else is returned as is.

    Args:
        value: a number, tensor, or nested dict/list/tuple of them.

    Returns:
        The converted copy, accepted by json.dumps(..., allow_nan=False) when its leaves are
        numbers, strings, booleans or None.

    Examples:
        >>> json_safe({"ratio": float("inf"), "values": [1.0, float("nan")]})
        {'ratio': 'inf', 'values': [1.0, 'nan']}
    """
    if isinstance(value, torch.Tensor):
        value = value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _label_free(z1: torch.Tensor, z2: torch.Tensor | None) -> dict[str, Any]:
    """The label-free quality metrics of z1 (LiDAR of the pair when z2 is given), with references."""
    batch, dim = z1.shape
    samples = min(batch, RANKME_SAMPLES)
    entries: dict[str, Any] = {
        "rankme": rankme(z1[:samples]),
        "rankme_samples": samples,
        "rankme_healthy": float(min(samples, dim)),
        "rankme_collapsed": 1.0,
        "nesum": nesum(z1),
        "nesum_healthy": float(min(batch - 1, dim)),
        "nesum_collapsed": 0.0,
        "stable_rank": stable_rank(z1),
        "stable_rank_healthy": float(min(batch - 1, dim)),
        "stable_rank_collapsed": 0.0,
        "w2_uniformity": w2_uniformity(z1),
        "w2_uniformity_healthy": 0.0,
        "w2_uniformity_collapsed": math.sqrt(2.0),
    }
    if min(batch - 1, dim) >= ALPHA_REQ_RANKS[1]:
        fit = alpha_req(z1)
        entries.update(alpha_req=fit["alpha"], alpha_req_r2=fit["r2"], alpha_req_healthy=1.0,
                       alpha_req_collapsed=math.inf)
    if z2 is not None:
        entries.update(lidar=lidar([z1, z2]), lidar_healthy=float(min(batch - 1, dim)), lidar_collapsed=1.0)
    return entries


def collapse_report(
    z1: torch.Tensor,
    z2: torch.Tensor | None = None,
    eps: float = 0.5,
    t: float = 2.0,
    alpha: float = 2.0,
) -> dict[str, Any]:
    """Spectrum, effective rank, isotropy, SimSiam std, center/residual split, uniformity,
    coding-rate Taylor gap of z1 and, when z2 is given, the alignment of the two views.

    Keys (values are Python floats unless noted; B = batch, d = dim):

      batch, dim (int); eps, t, alpha (the parameters used)
      spectrum                    covariance eigenvalues, descending (list of d floats)
      effective_rank              healthy min(B - 1, d), collapsed 0.0          [0]
      condition_number            healthy 1.0, collapsed inf
      eigenvalue_entropy          healthy 1.0, collapsed 0.0
      std_of_normalized           healthy 1 / sqrt(d), collapsed 0.0            [1]
      center_norm, residual_norm  ||o|| and mean ||r_b||                        [2]
      center_residual_ratio       healthy 1 / sqrt(B - 1) (random directions), collapsed inf
      uniformity                  healthy -2 t B / (B - 1) (its lower bound), collapsed 0.0 [3]
      alignment (z2 only)         healthy 0.0 (also 0.0 when collapsed: read with uniformity)
      coding_rate, taylor_surrogate, taylor_gap   R, T and R - T (no healthy/collapsed value)
      rankme                      healthy min(N, d), collapsed 1.0 (on the first rankme_samples
                                  = min(B, 25,600) rows, the paper's sample size)   [4]
      nesum, stable_rank          healthy min(B - 1, d), collapsed 0.0                [4]
      w2_uniformity               healthy 0.0 (its optimum), collapsed sqrt(2)        [4]
      alpha_req, alpha_req_r2     only when min(B - 1, d) >= 100; healthy alpha 1.0, collapsed inf
      lidar (z2 only)             LiDAR of the two views (each row an image); healthy min(B - 1, d),
                                  collapsed 1.0                                      [4]

    with "<name>_healthy" and "<name>_collapsed" entries holding the reference values. The
    single-batch metrics describe z1; z2 only enters the alignment.

    Args:
        z1: embeddings, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim), or None.
        eps: coding-rate distortion eps > 0 (a = d / eps^2).
        t: uniformity scale t > 0.
        alpha: alignment exponent alpha > 0.

    Returns:
        Dict of Python numbers (inf and nan are floats) and the spectrum as a list of floats;
        ``json_safe(report)`` is accepted by json.dumps(..., allow_nan=False).

    Examples:
        >>> import json
        >>> report = collapse_report(torch.ones(8, 4))  # collapsed
        >>> report["effective_rank"], report["std_of_normalized"], report["center_residual_ratio"]
        (0.0, 0.0, inf)
        >>> report["condition_number"] > 1e3
        True
        >>> json.loads(json.dumps(json_safe(report), allow_nan=False))["condition_number"]
        'inf'
    """
    if z2 is None:
        check_embeddings(z1, "z1")
    else:
        check_pair(z1, z2)
    eps = check_positive(eps, "eps")
    t = check_positive(t, "t")
    alpha = check_positive(alpha, "alpha")
    batch, dim = z1.shape
    iso = isotropy(z1)
    report: dict[str, Any] = {
        "batch": batch,
        "dim": dim,
        "eps": eps,
        "t": t,
        "alpha": alpha,
        "spectrum": spectrum(z1).tolist(),
        "effective_rank": iso["effective_rank"],
        "effective_rank_healthy": float(min(batch - 1, dim)),
        "effective_rank_collapsed": 0.0,
        "condition_number": iso["condition_number"],
        "condition_number_healthy": 1.0,
        "condition_number_collapsed": math.inf,
        "eigenvalue_entropy": iso["eigenvalue_entropy"],
        "eigenvalue_entropy_healthy": 1.0,
        "eigenvalue_entropy_collapsed": 0.0,
        "std_of_normalized": std_of_normalized(z1),
        "std_of_normalized_healthy": 1.0 / math.sqrt(dim),
        "std_of_normalized_collapsed": 0.0,
        **center_residual(z1),
        "center_residual_ratio_healthy": 1.0 / math.sqrt(batch - 1),
        "center_residual_ratio_collapsed": math.inf,
        "uniformity": uniformity(z1, t),
        "uniformity_healthy": -2.0 * t * batch / (batch - 1),
        "uniformity_collapsed": 0.0,
        **coding_rate_terms(z1, eps),
    }
    report.update(_label_free(z1, z2))
    if z2 is not None:
        report["alignment"] = alignment(z1, z2, alpha)
        report["alignment_healthy"] = 0.0
        report["alignment_collapsed"] = 0.0
    return report

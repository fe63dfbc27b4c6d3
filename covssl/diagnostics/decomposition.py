"""Collapse indicators on the l2-normalized embeddings: std, center/residual, gradient split.

[0] Chen, He, 2021, "Exploring Simple Siamese Representation Learning",
    https://arxiv.org/abs/2011.10566
[1] Zhang, Zhang, Zhang, Pham, Yoo, Kweon, 2022, "How does SimSiam avoid collapse without
    negative samples? A unified understanding with self-supervised contrastive learning",
    ICLR 2022, https://arxiv.org/abs/2203.16262

Each row is normalized, zn_b = z_b / ||z_b|| (an all-zero row stays zero), and decomposed [1]
as zn_b = o + r_b with the center o = (1/B) sum_b zn_b and the residual r_b = zn_b - o.
Collapse means every zn_b equals o: the residuals vanish, the per-dimension std of zn drops
to 0 and the ratio ||o|| / ||r|| grows without bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from covssl._checks import check_embeddings
from covssl.diagnostics._common import as_float64, normalize_rows, ratio
from covssl.linalg import at_least_float32

# Residual norms below this (the rows are unit vectors, so this is absolute) are the round-off
# of subtracting the mean from identical rows: the ratio treats them as zero.
_RESIDUAL_ROUND_OFF = 64.0 * torch.finfo(torch.float64).eps


def std_of_normalized(z: torch.Tensor) -> float:
    """SimSiam's collapse indicator: mean over dimensions of the std of the normalized rows.

    std_of_normalized(z) = (1/d) sum_j std_b(zn_bj),  zn_b = z_b / ||z_b||,

    with the unbiased std over the batch (divisor B - 1, as torch.std in [0]).

    Healthy: about 1/sqrt(d) (zn spread uniformly over the sphere: each coordinate has
    variance 1/d). Collapsed: 0 (all rows point the same way).

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.

    Returns:
        Python float in [0, 1].

    Examples:
        >>> z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        >>> round(std_of_normalized(z), 6)  # each column (1, -1, 0, 0): std sqrt(2/3)
        0.816497
        >>> std_of_normalized(torch.ones(8, 4) * 3.0)  # collapsed
        0.0
    """
    check_embeddings(z, "z")
    zn = normalize_rows(as_float64(z))  # (B, d)
    return float(zn.std(dim=0, correction=1).mean())


def center_residual(z: torch.Tensor) -> dict[str, float]:
    """Zhang et al.'s decomposition zn_b = o + r_b of the normalized rows.

    center_norm           = ||o||,  o = (1/B) sum_b zn_b
    residual_norm         = (1/B) sum_b ||r_b||,  r_b = zn_b - o
    center_residual_ratio = ||o|| / ((1/B) sum_b ||r_b||)

    The ratio is float("inf") when the residuals vanish (norm below 64 * eps64: identical
    rows, including the degenerate all-zero batch), which is complete collapse.

    Healthy: center_norm near 0 (about 1/sqrt(B) for random directions), residual_norm near 1,
    ratio well below 1. Collapsed: center_norm 1, residual_norm 0, ratio inf.

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.

    Returns:
        Dict of Python floats with keys "center_norm", "residual_norm",
        "center_residual_ratio".

    Examples:
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> {k: round(v, 6) for k, v in center_residual(z).items()}  # o = (1/2, 1/2)
        {'center_norm': 0.707107, 'residual_norm': 0.707107, 'center_residual_ratio': 1.0}
        >>> center_residual(torch.ones(4, 3))["center_residual_ratio"]  # collapsed
        inf
    """
    check_embeddings(z, "z")
    zn = normalize_rows(as_float64(z))  # (B, d)
    center = zn.mean(dim=0)  # (d,)
    residual_norm = float(torch.linalg.vector_norm(zn - center, dim=1).mean())
    center_norm = float(torch.linalg.vector_norm(center))
    if residual_norm <= _RESIDUAL_ROUND_OFF:
        split_ratio = math.inf  # collapsed, even when the rows are all zero (0 / 0)
    else:
        split_ratio = center_norm / residual_norm
    return {
        "center_norm": center_norm,
        "residual_norm": residual_norm,
        "center_residual_ratio": split_ratio,
    }


def gradient_split(
    loss_fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, tangent: bool = False
) -> dict[str, float]:
    """Split the gradient on the normalized rows into de-centering and de-correlation parts.

    g_b = d loss_fn(zn) / d zn_b at zn_b = z_b / ||z_b||, shape (B, d). Since zn_b = o + r_b,
    the gradient decomposes orthogonally (in R^{B x d}) by what it moves:

      g_b = c u  +  (gbar - c u)  +  (g_b - gbar),  gbar = (1/B) sum_b g_b,  u = o / ||o||,
                                                    c = <gbar, u>

      * c u, the same for every row, moves the center along itself: the de-centering part.
        A gradient-descent step zn <- zn - eta g changes ||o|| at the rate -c, reported as
        "center_norm_rate": negative = de-centering (what InfoNCE's negatives do [1]),
        positive = the step pulls the batch together toward collapse.
      * gbar - c u moves the center sideways (rotates it): "center_drift_norm".
      * g_b - gbar sums to zero over the batch: it changes the residuals only and leaves o
        fixed: the de-correlation part.

    Reported norms: center_grad_norm = |c| (equal for every row), residual_grad_norm =
    (1/B) sum_b ||g_b - gbar||, grad_ratio = center_grad_norm / residual_grad_norm (inf when
    the residual part is 0, nan when both are). If o = 0 there is no center direction:
    c = 0 and all of gbar is drift.

    The raw gradient includes a radial part (along zn_b) that the normalization discards;
    it depends on how loss_fn is written off the sphere (a dot-product similarity and a
    squared distance agree on the sphere but not their radial gradients). Zhang et al. [1]
    analyse the raw gradient of dot-product losses; tangent=True first removes the radial
    part, g_b <- g_b - <g_b, zn_b> zn_b, which is what reaches z through the normalization.

    Examples of the two pure cases: loss = ||o||^2 has g_b = 2 o / B (residual part 0,
    center_norm_rate = -2 ||o|| / B); loss = sum_b ||r_b||^2 has g_b = 2 r_b (gbar = 0).

    Healthy (a collapse-preventing term): center_norm_rate < 0 and a large residual part.
    Collapsed or collapsing (an alignment term alone): center_norm_rate >= 0, residual part 0.

    Args:
        loss_fn: maps the normalized batch (B, d) to a scalar tensor; called once with a
            leaf tensor requiring grad, in z's dtype (half precision upcast to float32).
        z: embeddings, shape (batch, dim), batch >= 2.
        tangent: project the gradient on the sphere's tangent space at zn_b first.

    Returns:
        Dict of Python floats with keys "center_grad_norm", "residual_grad_norm",
        "grad_ratio", "center_norm_rate", "center_drift_norm".

    Examples:
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> split = gradient_split(lambda zn: zn.mean(dim=0).pow(2).sum(), z)
        >>> split["residual_grad_norm"] < 1e-12, split["center_norm_rate"] < 0
        (True, True)
    """
    if not callable(loss_fn):
        raise ValueError(f"loss_fn: expected a callable mapping (batch, dim) to a scalar, got {loss_fn!r}")
    check_embeddings(z, "z")
    # Diagnostics are often called from evaluation code under no_grad or inference_mode.
    no_inference = torch.inference_mode(False)
    with no_inference, torch.enable_grad(), torch.autocast(device_type=z.device.type, enabled=False):
        zn_in = normalize_rows(at_least_float32(z.detach().clone())).requires_grad_(True)  # (B, d)
        loss = loss_fn(zn_in)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn: expected a scalar tensor, got {shape}")
        if loss.requires_grad:
            (grad,) = torch.autograd.grad(loss.reshape(()), zn_in, allow_unused=True)
        else:
            grad = None  # the loss does not depend on zn: zero gradient
    zn = as_float64(zn_in)  # (B, d)
    g = torch.zeros_like(zn) if grad is None else as_float64(grad)  # (B, d)
    if not bool(torch.isfinite(g).all()):
        raise ValueError("loss_fn: expected a finite gradient, got NaN/inf entries")
    if tangent:
        g = g - (g * zn).sum(dim=1, keepdim=True) * zn  # remove <g_b, zn_b> zn_b
    center = zn.mean(dim=0)  # (d,)
    mean_grad = g.mean(dim=0)  # (d,)
    center_norm = float(torch.linalg.vector_norm(center))
    direction = center / center_norm if center_norm > 0 else torch.zeros_like(center)  # u, (d,)
    coefficient = float(mean_grad @ direction)  # c = <gbar, u>
    # the norm of the vector, not sqrt(||gbar||^2 - c^2), which cancels catastrophically
    drift = float(torch.linalg.vector_norm(mean_grad - coefficient * direction))
    residual_grad_norm = float(torch.linalg.vector_norm(g - mean_grad, dim=1).mean())
    return {
        "center_grad_norm": abs(coefficient),
        "residual_grad_norm": residual_grad_norm,
        "grad_ratio": ratio(abs(coefficient), residual_grad_norm),
        "center_norm_rate": -coefficient,
        "center_drift_norm": drift,
    }

"""Cosine alignment terms: SimSiam's negative cosine with stop-gradient, and plain cosine.

[0] Chen, He, 2021, "Exploring Simple Siamese Representation Learning",
    https://arxiv.org/abs/2011.10566
[1] Wu et al., 2025, "Simplifying DINO via Coding Rate Regularization" (SimDINO),
    https://arxiv.org/abs/2502.10385

SimSiam has no regularizer at all: collapse is avoided by the predictor and by the stop-gradient
on the target branch [0, Sec. 4]. Without the stop-gradient the same loss collapses within a few
epochs, which is why ``negative_cosine`` detaches its target *inside* the function: a caller
cannot forget it.

All terms here are per-sample averages: under torch.distributed they are computed per rank.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``negative_cosine`` and ``cosine``
are local (means over the rank's own rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from covssl._checks import check_pair
from covssl.linalg import at_least_float32


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity (batch,) in float32 or higher, autocast off."""
    with torch.autocast(device_type=a.device.type, enabled=False):
        return F.cosine_similarity(at_least_float32(a), at_least_float32(b), dim=1)


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, stopgrad(z)): minus the mean cosine similarity, no gradient into z.

    D(p, z) = -(1/B) sum_b  p_b . z_b / (||p_b|| ||z_b||),   z detached

    Args:
        p: predictor outputs, shape (batch, dim), batch >= 2.
        z: projector outputs of the other view (the target), shape (batch, dim).

    Returns:
        Scalar tensor in [-1, 1]; -1 when every p_b points along z_b. The gradient with
        respect to z is exactly zero.

    Examples:
        >>> p = torch.randn(8, 16, requires_grad=True)
        >>> z = torch.randn(8, 16, requires_grad=True)
        >>> negative_cosine(p, z).backward()
        >>> z.grad is None
        True
    """
    check_pair(p, z, names=("p", "z"))
    return -_cosine(p, z.detach()).mean()  # detach here, not at the call site: see the module doc


def negative_cosine_no_stopgrad(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """D(p, z) *without* the stop-gradient: the ablation of [0, Sec. 4.1, Fig. 2] that collapses.

    D(p, z) = -(1/B) sum_b  p_b . z_b / (||p_b|| ||z_b||),   gradients into p and z

    Only for experiments that show the collapse (``covssl experiment simsiam-collapse``):
    the loss reaches its minimum -1 by mapping every image to the same direction.

    Args:
        p: predictor outputs, shape (batch, dim), batch >= 2.
        z: projector outputs of the other view, shape (batch, dim).

    Returns:
        Scalar tensor in [-1, 1], differentiable with respect to both p and z.

    Examples:
        >>> p = torch.randn(8, 16, requires_grad=True)
        >>> z = torch.randn(8, 16, requires_grad=True)
        >>> negative_cosine_no_stopgrad(p, z).backward()
        >>> z.grad is not None
        True
    """
    check_pair(p, z, names=("p", "z"))
    return -_cosine(p, z).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The symmetrized SimSiam loss [0, Eq. 2].

    L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2,   D = :func:`negative_cosine`

    Args:
        p1: predictor output of view 1, shape (batch, dim).
        p2: predictor output of view 2, shape (batch, dim).
        z1: projector output of view 1, shape (batch, dim).
        z2: projector output of view 2, shape (batch, dim).

    Returns:
        Scalar tensor in [-1, 1].

    Examples:
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> round(simsiam_loss(z2, z1, z1, z2).item(), 4)  # p1 = z2, p2 = z1: perfect predictions
        -1.0
    """
    check_pair(p1, z2, names=("p1", "z2"))
    check_pair(p2, z1, names=("p2", "z1"))
    # Validated above with the caller's names; the unchecked form avoids scanning twice.
    return -_cosine(p1, z2.detach()).mean() / 2 - _cosine(p2, z1.detach()).mean() / 2


def cosine_alignment(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance between the two views, with gradients into both.

    A(z1, z2) = (1/B) sum_b (1 - cos(z1_b, z2_b)) = (1/B) sum_b ||zn1_b - zn2_b||^2 / 2

    with zn = z / ||z||. This is the alignment of SimDINO-style coding-rate SSL [1]; unlike
    :func:`negative_cosine` it has no stop-gradient, so it needs a regularizer to avoid collapse.

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).

    Returns:
        Scalar tensor in [0, 2]; 0 when the views are aligned.

    Examples:
        >>> z = torch.randn(8, 16)
        >>> round(cosine_alignment(z, -z).item(), 4)  # opposite directions
        2.0
    """
    check_pair(z1, z2)
    return (1.0 - _cosine(z1, z2)).mean()

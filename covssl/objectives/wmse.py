"""W-MSE: whiten each view's batch, then pull the whitened positives together.

[0] Ermolov, Siarohin, Sangineto, Sebe, 2021, "Whitening for Self-Supervised Representation
    Learning" (ICML 2021), https://arxiv.org/abs/2007.06346
    Official code: https://github.com/htdt/self-supervised (methods/w_mse.py, methods/whitening.py)

    zc   = z - mean(z)                          per sub-batch of n rows, for each view separately
    C    = (1 - eps) zc^T zc / (n - 1) + eps I  unbiased covariance, shrunk towards I
    L    = cholesky(C)                          C = L L^T
    w    = zc L^{-T}  (w_b = L^{-1} zc_b)       whitened: Cov(w) = I when eps = 0
    loss = mean_b ||w1_b/||w1_b|| - w2_b/||w2_b|| ||^2 = 2 - 2 mean_b cos(w1_b, w2_b)

Whitening removes the collapsed solution (every w has identity covariance), so the loss only
has to align the positives. Gradients flow through the whitening matrix, as in the official code.

What covssl does, and where it differs from the official code:

* Each view is whitened separately, over the same sample indices in both views (the official
  ``WMSE.forward`` whitens ``h[idx + i * bs]`` for each view i). The first public version of the
  code (2020) whitened the concatenation of both views instead; covssl follows the current one.
* ``eps`` is the official ``--w_eps`` (default 0): C is *shrunk*, (1 - eps) C + eps I, not C + eps I.
  As (1 - eps) C + eps I = (1 - eps) (C + eps' I) with eps' = eps / (1 - eps), and the loss only
  sees directions (cosines), the loss equals that of C + eps' I exactly.
* ``w_size`` (official ``--w_size``) splits the batch into sub-batches that are whitened
  independently; the loss is the mean over all rows, i.e. the mean of the per-chunk losses. The
  official code draws a random permutation for the split and averages ``--w_iter`` such draws;
  covssl takes *consecutive* chunks of ``w_size`` rows, so it is deterministic. To reproduce one
  official draw pass ``z1[perm], z2[perm]`` (the same ``perm`` for both views); for w_iter > 1
  average the losses of several permutations. ``w_size=None`` whitens the whole batch once
  (the official default ``w_size = bs``, where there is nothing to draw).
* Two views only; with V views the official loss is the mean of this loss over the V(V-1)/2 pairs.

Whitening runs in float32 or higher (float64 for float64 input) with autocast disabled. With
eps = 0 a sub-batch needs n > d rows (n - 1 >= d, the rank bound of the covariance); a
numerically singular covariance (collapsed or linearly dependent embeddings) raises ValueError
instead of returning NaN.

Distributed training: the whitening uses whatever batch it is given.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``wmse`` is global: the means, the
covariances and their Cholesky factors use the gathered batch (chunks of ``w_size`` consecutive
rows of it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from covssl._checks import check_embeddings, check_non_negative, check_pair
from covssl.linalg import at_least_float32


def _check_eps(eps: object) -> float:
    value = check_non_negative(eps, "eps")
    if value >= 1.0:
        raise ValueError(f"eps: expected a shrinkage weight in [0, 1), got {eps!r}")
    return value


def _chunk_size(batch: int, dim: int, w_size: object, eps: float) -> int:
    """Rows per whitened sub-batch: validates ``w_size`` against the batch shape."""
    if w_size is None:
        size, name = batch, "z1"
    else:
        if isinstance(w_size, bool) or not isinstance(w_size, int):
            raise ValueError(f"w_size: expected None or an int, got {w_size!r}")
        if w_size < 2 or w_size > batch:
            raise ValueError(f"w_size: expected an int in [2, batch size {batch}], got {w_size}")
        if batch % w_size != 0:
            raise ValueError(
                f"w_size: expected a divisor of the batch size {batch}, got {w_size} "
                f"({batch} % {w_size} = {batch % w_size})"
            )
        size, name = w_size, "w_size"
    if eps == 0.0 and size <= dim:
        raise ValueError(
            f"{name}: expected more rows per whitened sub-batch than dimensions ({size} > {dim}), got "
            f"{size}; the unbiased covariance of {size} rows has rank <= {size - 1} < {dim}, so it is "
            f"singular (use a larger batch or w_size, or eps > 0)"
        )
    return size


def _whiten(z: torch.Tensor, size: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky-whiten consecutive chunks of ``size`` rows; returns (w, Cholesky info per chunk)."""
    batch, dim = z.shape
    x = z.reshape(batch // size, size, dim)  # (k, n, d), k chunks of n rows
    xc = x - x.mean(dim=1, keepdim=True)  # (k, n, d)
    cov = xc.transpose(1, 2) @ xc / (size - 1)  # (k, d, n) @ (k, n, d) -> (k, d, d)
    if eps > 0.0:
        eye = torch.eye(dim, dtype=cov.dtype, device=cov.device)
        cov = (1.0 - eps) * cov + eps * eye  # the official Whitening2d's shrinkage
    factor, info = torch.linalg.cholesky_ex(cov)  # (k, d, d) lower, (k,); never raises
    # w_b = L^{-1} zc_b for every row: one triangular solve per chunk
    w = torch.linalg.solve_triangular(factor, xc.transpose(1, 2), upper=False)  # (k, d, d) \ (k, d, n) -> (k, d, n)
    return w.transpose(1, 2).reshape(batch, dim), info  # (B, d), (k,)


def _raise_if_singular(views: list[tuple[str, torch.Tensor, torch.Tensor]], size: int) -> None:
    """One device sync for all views; the details are read only on failure."""
    flags = [torch.logical_or((info != 0).any(), ~torch.isfinite(w).all()) for _, w, info in views]
    if not bool(torch.stack(flags).any()):
        return
    for name, w, info in views:
        failed = torch.nonzero(info).flatten().tolist()
        if failed:
            chunk = failed[0]
            raise ValueError(
                f"{name}: expected a positive-definite covariance in every whitened sub-batch, but the "
                f"Cholesky factorization of sub-batch {chunk} (rows {chunk * size}..{(chunk + 1) * size - 1}) "
                f"failed at leading minor {int(info[chunk])} (dtype {w.dtype}, dim {w.shape[1]}); the "
                f"embeddings are collapsed or linearly dependent (eps > 0 shrinks the covariance towards I)"
            )
        if not bool(torch.isfinite(w).all()):
            raise ValueError(
                f"{name}: expected finite whitened embeddings, got NaN/inf: the covariance is numerically "
                f"singular (dtype {w.dtype}); the embeddings are nearly collapsed (eps > 0 shrinks it towards I)"
            )


def cholesky_whiten(z: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Whiten a batch with the Cholesky factor of its unbiased covariance, as W-MSE does.

    w = (z - mean) L^{-T},   L L^T = (1 - eps) Cov(z) + eps I,   Cov(w) = I for eps = 0

    Args:
        z: embeddings, shape (batch, dim); batch > dim when eps = 0.
        eps: shrinkage of the covariance towards the identity, in [0, 1).

    Returns:
        Whitened embeddings, shape (batch, dim), float32 or higher, with zero mean and unbiased
        covariance I (eps = 0). Not invariant to rotations of z: the Cholesky factor fixes the basis.

    Raises:
        ValueError: the covariance is singular (batch <= dim with eps = 0, or collapsed input).

    Examples:
        >>> z = torch.randn(64, 4, dtype=torch.float64) @ torch.randn(4, 4, dtype=torch.float64)
        >>> w = cholesky_whiten(z)
        >>> torch.allclose(torch.cov(w.T), torch.eye(4, dtype=torch.float64))
        True
    """
    check_embeddings(z, "z")
    eps = _check_eps(eps)
    batch, dim = z.shape
    if eps == 0.0 and batch <= dim:
        raise ValueError(
            f"z: expected more rows than dimensions ({batch} > {dim}) to whiten, got shape "
            f"{tuple(z.shape)}; the unbiased covariance is singular (use eps > 0)"
        )
    with torch.autocast(device_type=z.device.type, enabled=False):
        w, info = _whiten(at_least_float32(z), batch, eps)
        _raise_if_singular([("z", w, info)], batch)
    return w


def wmse_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    w_size: int | None = None,
    eps: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The W-MSE loss of two views: normalized MSE between Cholesky-whitened embeddings.

    w1, w2 = whiten(z1), whiten(z2)        per chunk of w_size rows, each view separately
    loss   = 2 - 2 (1/B) sum_b cos(w1_b, w2_b)

    Args:
        z1: embeddings of the first view, shape (batch, dim).
        z2: embeddings of the second view, shape (batch, dim).
        w_size: rows per whitened sub-batch (official ``--w_size``; paper: 128 on CIFAR), a
            divisor of the batch size; None whitens the whole batch at once. With eps = 0 it must
            exceed dim (batch > dim when None).
        eps: shrinkage of each covariance towards the identity, (1 - eps) C + eps I, in [0, 1)
            (official ``--w_eps``, default 0).

    Returns:
        Dict with "loss" (in [0, 4]; 0 when every whitened pair points the same way) and
        "cosine", the mean cosine similarity of the whitened pairs (loss = 2 - 2 cosine), both
        scalar tensors. Unchanged by z -> z U + t for any upper-triangular U with positive
        diagonal (per view: the Cholesky factor absorbs it), but not by general rotations.

    Raises:
        ValueError: bad shapes or arguments, or a singular covariance (collapsed input).

    Examples:
        >>> z = torch.randn(32, 8)
        >>> abs(round(wmse_loss(z, 2 * z + 1)["loss"].item(), 4))  # same up to an affine map: aligned
        0.0
        >>> sorted(wmse_loss(z, torch.randn(32, 8), w_size=16))
        ['cosine', 'loss']
    """
    check_pair(z1, z2)  # once here: each finiteness check is a device sync on GPU
    eps = _check_eps(eps)
    batch, dim = z1.shape
    size = _chunk_size(batch, dim, w_size, eps)
    with torch.autocast(device_type=z1.device.type, enabled=False):
        w1, info1 = _whiten(at_least_float32(z1), size, eps)  # (B, d)
        w2, info2 = _whiten(at_least_float32(z2), size, eps)  # (B, d)
        _raise_if_singular([("z1", w1, info1), ("z2", w2, info2)], size)
        # F.normalize, as the official norm_mse_loss: a zero row stays zero (cosine 0), no NaN
        cosine = (F.normalize(w1, dim=1) * F.normalize(w2, dim=1)).sum(dim=1).mean()
    return {"loss": 2.0 - 2.0 * cosine, "cosine": cosine}

"""Matrix-SSL: matrix cross-entropy uniformity and alignment of centered (cross-)covariances.

[0] Zhang, Tan, Yang, Huang, Yuan, 2024, "Matrix Information Theory for Self-Supervised Learning"
    (Matrix-SSL, ICML 2024), https://arxiv.org/abs/2305.17326 ; official code
    https://github.com/yifanzhang-pro/Matrix-SSL (``mce_loss_func``, ``matrix_log`` and ``train``
    in ``main_pretrain.py``, itself built on the MEC code, :mod:`covssl.objectives.mec`)

With rows l2-normalized and centered (the code's J_m = I - 11^T / m), C(p, z) = p^T J z / B:

    log_T(Q)    = sum_{k=1..order} (-1)^(k+1) (Q - I)^k / k       (the code's ``matrix_log``)
    corr(p, z)  = -lambd tr log_T(C(p, z) + mu I)                 (``correlation=True``)
    unif(p, z)  = -tr[(C(p, p) + mu I) log_T(C(z, z) + mu I)]     (``correlation=False``)
    loss = 1/2 [corr(z2, z1) + corr(z1, z2) + gamma (unif(z2, z1) + unif(z1, z2))]

Names: the official flag calls the first term "correlation"; the paper calls it the matrix
*uniformity* loss (the cross-covariance is matched to a multiple of the identity: MCE(lambd I, .))
and the second, which matches one view's auto-covariance to the other's, the matrix *alignment*
loss, weighted by gamma: L = L_uniformity + gamma L_alignment. This module follows the paper:

    uniformity = 1/2 [corr(z2, z1) + corr(z1, z2)] = corr(z1, z2)   (C(z2, z1) = C(z1, z2)^T)
    alignment  = 1/2 [unif(z2, z1) + unif(z1, z2)]
    loss       = uniformity + gamma * alignment

Defaults are the official *training* arguments (``--mce_lambd 0.5 --mce_mu 0.5 --mce_order 4
--gamma 1.0`` in ``main_pretrain.py``; the loss function's own defaults are lambd = mu = 1).
``--align_gamma`` (0.003) only enters the off-by-default HSIC variant and is not implemented.

Where covssl differs from the official code, and how to reproduce it:

* Stop-gradient. Nothing is detached here: gradients reach both inputs. The official loop calls
  mce_loss_func(p2, z1) and mce_loss_func(p1, z2) with p the output of an EMA teacher computed
  under ``no_grad`` (the target) and z the student's predictor output. corr is symmetric, unif is
  not: the official loss is 1/2 [F(p2, z1) + F(p1, z2)] with F = ``matrix_ssl_loss(p.detach(), z,
  symmetric=False)``, whose alignment is unif(p, z) alone.
* The matrix log is the code's Taylor series around I, not the true matrix logarithm of the
  paper's definitions, and each term is -tr(P log_T Q) with nothing added (no + tr Q); covssl
  computes exactly that. For unit rows tr C(z, z) <= 1, so the eigenvalues of C(z, z) + mu I lie
  in [mu, mu + 1] and the series converges there for 0 < mu < 1 (0.5: |Q - I| <= 1/2). The
  (possibly complex) eigenvalues of C(z1, z2) have |lambda| <= 1 and the series converges where
  |lambda + mu - 1| < 1, e.g. for lambda >= 0 (aligned views); elsewhere log_T is a finite
  polynomial, not a logarithm.

The B x B path (``path``, the cheaper side when B < d) is exact, not an approximation: C(z1, z2)
= X1^T X2 / B has the eigenvalues of K = X2 X1^T / B plus d - B zeros, so a trace of a polynomial
of it is the same polynomial on K plus (d - B) times its value at 0; and for C = X^T X / B,
G = X X^T / B, h(C) = h(0) I + X^T r(G) X / B with r(x) = (h(x) - h(0)) / x.

Distributed training: the official code gathers both views from all GPUs before the loss.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``matrix_ssl`` is global: the means,
the covariances C = X^T X / B and the 1 / B use the gathered batch, B global.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from covssl._checks import check_non_negative, check_pair, check_positive
from covssl.linalg import Path, at_least_float32, center, use_sample_side
from covssl.objectives.mec import _check_order, taylor_trace_log


def _log_taylor(q: torch.Tensor, order: int) -> torch.Tensor:
    """log_T(q) = sum_{k=1..order} (-1)^(k+1) (q - I)^k / k as a matrix (the d x d reference path)."""
    w = q - torch.eye(q.shape[0], dtype=q.dtype, device=q.device)
    power, total = w, w.clone()
    for k in range(2, order + 1):
        power = power @ w  # (d, d) @ (d, d) -> (d, d)
        total = total + power / k if k % 2 else total - power / k
    return total


def _feature_side(
    x1: torch.Tensor, x2: torch.Tensor, mu: float, order: int, symmetric: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """tr log_T(C12 + mu I) and [unif(z1, z2), unif(z2, z1) if symmetric] on the d x d side."""
    batch, dim = x1.shape
    eye = torch.eye(dim, dtype=x1.dtype, device=x1.device)
    c12 = x1.T @ x2 / batch  # (d, B) @ (B, d) -> (d, d)
    c11 = x1.T @ x1 / batch  # (d, B) @ (B, d) -> (d, d)
    c22 = x2.T @ x2 / batch  # (d, B) @ (B, d) -> (d, d)
    trace_log_cross = taylor_trace_log(c12 + (mu - 1.0) * eye, order)
    # tr(P L) = sum(P * L) for symmetric P and L = log_T(symmetric): no d x d matmul
    ces = [-((c11 + mu * eye) * _log_taylor(c22 + mu * eye, order)).sum()]  # unif(z1, z2)
    if symmetric:
        ces.append(-((c22 + mu * eye) * _log_taylor(c11 + mu * eye, order)).sum())  # unif(z2, z1)
    return trace_log_cross, ces


def _sample_cross_entropy(
    kkt: torch.Tensor, gram_z: torch.Tensor, trace_p: torch.Tensor, dim: int, mu: float, order: int
) -> torch.Tensor:
    """-tr[(C_pp + mu I_d) log_T(C_zz + mu I_d)] from B x B matrices.

    kkt = K K^T with K = X_z X_p^T / B, gram_z = X_z X_z^T / B, trace_p = tr C_pp. With
    h(x) = log_T(x + mu) = sum_k a_k (x + s)^k, s = mu - 1, and V = gram_z + s I_B:
    tr h(C_zz) = tr h(gram_z) + (d - B) h(0) and tr(C_pp h(C_zz)) = h(0) tr C_pp + tr(kkt r(gram_z)),
    r(x) = sum_k a_k sum_{i<k} (x + s)^i s^(k-1-i) = sum_i b_i V^i.
    """
    batch = gram_z.shape[0]
    shift = mu - 1.0
    coeffs = [(-1) ** (k + 1) / k for k in range(1, order + 1)]  # a_1 .. a_order
    h0 = sum(a * shift**k for k, a in enumerate(coeffs, start=1))
    b = [sum(coeffs[k - 1] * shift ** (k - 1 - i) for k in range(i + 1, order + 1)) for i in range(order)]
    v = gram_z + shift * torch.eye(batch, dtype=gram_z.dtype, device=gram_z.device)
    power = torch.eye(batch, dtype=v.dtype, device=v.device)  # V^0
    r = b[0] * power
    trace_h = h0 * (dim - batch) + coeffs[0] * torch.diagonal(v).sum()
    for i in range(1, order):
        power = power @ v  # (B, B) @ (B, B) -> (B, B): V^i
        r = r + b[i] * power
        # tr V^(i+1) = sum(V^i * V), V symmetric
        trace_h = trace_h + coeffs[i] * (power * v).sum()
    return -(h0 * trace_p + (kkt * r).sum() + mu * trace_h)


def _sample_side(
    x1: torch.Tensor, x2: torch.Tensor, mu: float, order: int, symmetric: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The same traces as :func:`_feature_side`, from B x B matrices only."""
    batch, dim = x1.shape
    k12 = x2 @ x1.T / batch  # (B, d) @ (d, B) -> (B, B): the eigenvalues of C12 but d - B zeros
    g1 = x1 @ x1.T / batch  # (B, d) @ (d, B) -> (B, B)
    g2 = x2 @ x2.T / batch  # (B, d) @ (d, B) -> (B, B)
    eye = torch.eye(batch, dtype=x1.dtype, device=x1.device)
    shift = mu - 1.0
    log_mu = sum((-1) ** (k + 1) * shift**k / k for k in range(1, order + 1))  # log_T(mu): a zero eigenvalue
    trace_log_cross = taylor_trace_log(k12 + shift * eye, order) + (dim - batch) * log_mu
    trace1, trace2 = torch.diagonal(g1).sum(), torch.diagonal(g2).sum()
    # unif(z1, z2): p = z1, z = z2, K = X2 X1^T / B = k12; unif(z2, z1): K = X1 X2^T / B = k12^T
    ces = [_sample_cross_entropy(k12 @ k12.T, g2, trace1, dim, mu, order)]  # (B, B) @ (B, B)
    if symmetric:
        ces.append(_sample_cross_entropy(k12.T @ k12, g1, trace2, dim, mu, order))  # (B, B) @ (B, B)
    return trace_log_cross, ces


def matrix_ssl_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    lambd: float = 0.5,
    mu: float = 0.5,
    order: int = 4,
    gamma: float = 1.0,
    symmetric: bool = True,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """Matrix-SSL loss: matrix uniformity + gamma * matrix alignment (to be minimized).

    Xv  = Zvn - mean_b Zvn,  Zvn = rows of zv l2-normalized         (B, d), v = 1, 2
    Cuv = Xu^T Xv / B                                                (d, d)
    uniformity = -lambd tr log_T(C12 + mu I)
    alignment  = -1/2 (tr[(C22 + mu I) log_T(C11 + mu I)] + tr[(C11 + mu I) log_T(C22 + mu I)])
    loss       = uniformity + gamma * alignment

    log_T is the Taylor series of the matrix log around I cut at ``order``. Uniformity is
    smallest when the (cross-)covariance spreads its unit trace evenly over all directions
    (log_T is increasing and concave), largest for a constant batch (C = 0).

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        lambd: scale of the identity target of the uniformity term, >= 0 (official: 0.5).
        mu: ridge added to every covariance, > 0; the series converges for mu < 1 (official: 0.5).
        order: the last power of the Taylor series of the matrix log, an int >= 1 (official: 4).
        gamma: weight of the alignment term, >= 0 (official: 1.0).
        symmetric: average the alignment over both directions (True), or keep only
            -tr[(C11 + mu I) log_T(C22 + mu I)], z1 the target, as in each official call with
            z1 = the detached teacher output (False).
        path: "auto" (B x B when B < d), "feature" (d x d, the official computation) or
            "sample" (B x B, exact by Sylvester-type identities).

    Returns:
        Dict with "loss", "uniformity" and "alignment" (unweighted), all scalar tensors.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> z1 = torch.randn(64, 16)
        >>> out = matrix_ssl_loss(z1, z1 + 0.1 * torch.randn(64, 16))
        >>> sorted(out)
        ['alignment', 'loss', 'uniformity']
        >>> constant = torch.ones(64, 16)  # complete collapse: C = 0
        >>> bool(matrix_ssl_loss(constant, constant)["uniformity"] > out["uniformity"])
        True
    """
    check_pair(z1, z2)
    lambd = check_non_negative(lambd, "lambd")
    mu = check_positive(mu, "mu")
    order = _check_order(order)
    gamma = check_non_negative(gamma, "gamma")
    if not isinstance(symmetric, bool):
        raise ValueError(f"symmetric: expected a bool, got {symmetric!r}")
    batch, dim = z1.shape
    sample_side = use_sample_side(batch, dim, path)  # also validates ``path``
    with torch.autocast(device_type=z1.device.type, enabled=False):
        # Float32 at least: the matrix powers of the series lose most digits in fp16/bf16.
        x1 = center(F.normalize(at_least_float32(z1), dim=1))  # (B, d) = J Z1n
        x2 = center(F.normalize(at_least_float32(z2), dim=1))  # (B, d) = J Z2n
        side = _sample_side if sample_side else _feature_side
        trace_log_cross, cross_entropies = side(x1, x2, mu, order, symmetric)
        uniformity = -lambd * trace_log_cross
        alignment = sum(cross_entropies) / len(cross_entropies)
    return {"loss": uniformity + gamma * alignment, "uniformity": uniformity, "alignment": alignment}

"""Maximum Entropy Coding (MEC): maximize the coding length of the cross-view Gram matrix.

[0] Liu, Wang, Li, Wang, 2022, "Self-Supervised Learning via Maximum Entropy Coding" (NeurIPS 2022),
    https://arxiv.org/abs/2210.11464 ; official code https://github.com/xinliu20/MEC
    (``loss_func`` and ``train`` in ``main_pretrain.py``)

The paper's coding length of m samples in d dimensions at squared distortion eps_p^2 is
mu log det(I_m + lambda Z1^T Z2) with mu = (m + d) / 2 and lambda = d / (m eps_p^2); MEC maximizes
it with log det(I + c) = tr log(I + c) replaced by its Taylor series cut at ``order`` (Eqn. 2).
In covssl's notation (rows are samples, B = m, the code's ``--eps`` is eps_p^2, default 64):

    Z1n, Z2n = rows of z1, z2 l2-normalized                     (B, d)
    a        = d / (B eps)              the paper's lambda; the code's 1 / lamda_inv
    c        = a Z1n Z2n^T                                        (B, B) cross-view Gram matrix
    L        = tr sum_{k=1..order} (-1)^(k+1) c^k / k             ~ log det(I_B + c)
    loss     = -L / (B a) = -(eps / d) L

Matching the official code: it writes lamda_inv = B eps / d, c = p z^T / lamda_inv and
loss = -lamda_inv (L(p1, z2) + L(p2, z1)) / (2 B). For one pair, L(z1, z2) = L(z2, z1) exactly
(swapping the views turns c into c^T, and tr c^k = tr (c^T)^k), so covssl computes L once;
``loss`` equals the official symmetrized value. The division by B a ("scaled loss by lamda") makes
the first-order term -mean_b cos(z1_b, z2_b), whatever a: the gradient scale does not follow eps.

Where covssl differs from the official code, and how to reproduce it:

* Stop-gradient. Nothing is detached here: gradients reach both inputs. The official model feeds
  L(p1, z2) and L(p2, z1) with p the output of an EMA teacher (a momentum copy of backbone +
  projector, no predictor, run under ``no_grad``) and z the student's predictor output, so only
  the student gets gradients; pass the teacher's detached output and average the two calls
  (a "predict"-shaped use) to match it.
* Warm-up. The code moves lamda_inv linearly from 8 B eps / d to B eps / d over the first 10
  epochs (``lamda_scheduler(8/lamda, 1/lamda, ..., warmup_epochs=10)``); lamda_inv is linear in
  eps and enters both c and the prefactor, so passing eps(t) = 8 eps -> eps reproduces it. The
  default eps = 64 is the value after the warm-up.
* ``exact=True`` replaces the series by log det(I + c) itself (not in the official code).

Convergence: the series converges to log det(I + c) only while the spectral radius rho(c) < 1.
For isotropic unit rows rho ~ a max(1, B/d) = max(d/B, 1) / eps (1/32 at B = 1024, d = 2048);
for a collapsed batch (all rows equal) rho = a B = d / eps (32 there), far outside: the truncated
polynomial is then a different, still finite, objective. The warm-up keeps rho small early on.

Sylvester's identity: tr c^k = tr (a Z1n^T Z2n)^k and det(I_B + a Z1n Z2n^T) = det(I_d + a Z1n^T Z2n),
so ``path`` picks the smaller of the B x B and d x d matrices. c is not symmetric: the exact form
uses ``torch.linalg.slogdet`` (LU), not Cholesky, and det(I + c) can be <= 0 (strongly
anti-aligned views with a large a): the log-determinant is then undefined and a ValueError is
raised rather than a NaN returned.

Distributed training: the official code gathers both views from all GPUs (B = global batch).
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``mec`` is global: c, a = d / (B eps)
and the 1 / (B a) prefactor use the gathered batch, B global.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from covssl._checks import check_pair, check_positive
from covssl.linalg import Path, at_least_float32, use_sample_side


def _check_order(order: object) -> int:
    """The truncation order of a Taylor series: an int >= 1 (bool is rejected)."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order: expected an integer >= 1, got {order!r}")
    return order


def taylor_trace_log(c: torch.Tensor, order: int) -> torch.Tensor:
    """tr sum_{k=1..order} (-1)^(k+1) c^k / k for a square c, the Taylor series of log det(I + c).

    Only c, c^2, ..., c^h with h = ceil(order / 2) are formed (h - 1 matmuls instead of the
    official order - 1): tr c^(i+j) = sum(c^i * (c^j)^T) for any square c, symmetric or not.

    Args:
        c: square matrix, shape (n, n).
        order: the last power kept, an int >= 1.

    Returns:
        Scalar tensor in the dtype of c.

    Examples:
        >>> c = torch.tensor([[0.1, 0.02], [0.0, -0.05]], dtype=torch.float64)
        >>> exact = torch.logdet(torch.eye(2, dtype=torch.float64) + c)
        >>> bool(abs(taylor_trace_log(c, 12) - exact) < 1e-12)
        True
    """
    order = _check_order(order)
    powers = [c]  # powers[i - 1] = c^i
    for _ in range((order + 1) // 2 - 1):
        powers.append(powers[-1] @ c)  # (n, n) @ (n, n) -> (n, n)
    total = torch.diagonal(c).sum()
    for k in range(2, order + 1):
        i, j = (k + 1) // 2, k // 2
        trace = (powers[i - 1] * powers[j - 1].T).sum()  # tr(c^i c^j) without the matmul
        total = total + trace / k if k % 2 else total - trace / k
    return total


def _logdet_identity_plus(c: torch.Tensor) -> torch.Tensor:
    """log det(I + c) for a square, not necessarily symmetric c; ValueError when det(I + c) <= 0."""
    eye = torch.eye(c.shape[0], dtype=c.dtype, device=c.device)
    sign, logabsdet = torch.linalg.slogdet(eye + c)
    if bool(sign <= 0):
        raise ValueError(
            f"exact: expected det(I + c) > 0 for c = d/(B eps) Z1n Z2n^T, got sign {sign.item():+.0f} "
            f"(log|det| = {logabsdet.item():.4g}, dtype {c.dtype}); the log-determinant is undefined, "
            "which happens for strongly anti-aligned views: use exact=False or a larger eps"
        )
    return logabsdet


def mec_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    eps: float = 64.0,
    order: int = 4,
    exact: bool = False,
    path: Path = "auto",
) -> dict[str, torch.Tensor]:
    """Maximum Entropy Coding loss (to be minimized; the coding length is maximized).

    a    = d / (B eps)
    c    = a Z1n Z2n^T                                     (B, B), rows l2-normalized
    L    = tr sum_{k=1..order} (-1)^(k+1) c^k / k          (exact=False, the official form)
         = log det(I_B + c)                                (exact=True)
    loss = -L / (B a) = -(eps / d) L

    The first Taylor term gives loss = -mean_b cos(z1_b, z2_b); the higher ones penalize
    correlations between samples (and, on the d x d side, between dimensions). Symmetric in
    the two views, and no stop-gradient: both inputs get gradients.

    Args:
        z1: embeddings of the first view, shape (batch, dim), batch >= 2.
        z2: embeddings of the second view, shape (batch, dim).
        eps: the code's ``--eps``, the squared distortion eps_p^2, > 0 (official: 64 for d = 2048;
            the official warm-up starts at 8 eps).
        order: the last power of the Taylor series, an int >= 1 (official: 4); unused when exact.
        exact: use log det(I + c) instead of its truncated series.
        path: "auto" (B x B when B < d), "feature" (d x d, a Z1n^T Z2n) or "sample" (B x B).

    Returns:
        Dict of scalar tensors: "loss"; "logdet", L itself (series or exact); and
        "coding_length", mu L / B with mu = (B + d) / 2, the per-sample coding length that the
        official code logs as "MEC".

    Raises:
        ValueError: on bad input, or with exact=True when det(I + c) <= 0.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> z1 = torch.randn(32, 64)
        >>> out = mec_loss(z1, z1 + 0.1 * torch.randn(32, 64))
        >>> sorted(out)
        ['coding_length', 'logdet', 'loss']
        >>> bool(out["loss"] < -0.9)  # about -mean cos, and the views are aligned
        True
        >>> z2 = z1 + 0.1 * torch.randn(32, 64)
        >>> taylor = mec_loss(z1, z2, eps=1e3)["logdet"]  # small a: the series has converged
        >>> exact = mec_loss(z1, z2, eps=1e3, exact=True)["logdet"]
        >>> bool(abs(taylor - exact) < 1e-4)  # float32 rounding of slogdet, ~n * 6e-8
        True
    """
    check_pair(z1, z2)
    eps = check_positive(eps, "eps")
    order = _check_order(order)
    if not isinstance(exact, bool):
        raise ValueError(f"exact: expected a bool, got {exact!r}")
    batch, dim = z1.shape
    sample_side = use_sample_side(batch, dim, path)  # also validates ``path``
    scale = dim / (batch * eps)  # a, the paper's lambda = 1 / lamda_inv of the code
    with torch.autocast(device_type=z1.device.type, enabled=False):
        # Float32 at least: slogdet and the matrix powers lose most digits in fp16/bf16.
        n1 = F.normalize(at_least_float32(z1), dim=1)  # (B, d)
        n2 = F.normalize(at_least_float32(z2), dim=1)  # (B, d)
        if sample_side:
            c = scale * (n1 @ n2.T)  # (B, d) @ (d, B) -> (B, B)
        else:
            c = scale * (n1.T @ n2)  # (d, B) @ (B, d) -> (d, d): same tr c^k and det(I + c)
        logdet = _logdet_identity_plus(c) if exact else taylor_trace_log(c, order)
        loss = -logdet / (batch * scale)
        coding_length = (batch + dim) / 2 * logdet / batch
    return {"loss": loss, "logdet": logdet, "coding_length": coding_length}

"""CorInfoMax: log-det of running covariance estimates plus a squared-distance alignment.

[0] Ozsoy, Hamdan, Arik, Yuret, Erdogan, 2022, "Self-Supervised Learning with an Information
    Maximization Criterion" (NeurIPS 2022), https://arxiv.org/abs/2209.07999
    Official code and run commands: https://github.com/serdarozsoy/corinfomax-ssl

CorInfoMax maximizes a second-order (correlative) mutual information between the two views,
which [0] approximates by

    J = 1/2 logdet(R1 + eps I) + 1/2 logdet(R2 + eps I) - alpha' * mean_b ||z1_b - z2_b||^2

The log-det "big-bang" term keeps every direction of each branch's covariance alive; the
alignment "attraction" term matches the views. R1, R2 are *running* estimates: a batch of 512
is a noisy covariance estimate, so each step mixes the previous estimate (detached) with the
current batch (with gradient), for each branch k = 1, 2 separately:

    mu_k <- lambda_mu * mu_k + (1 - lambda_mu) * mean_b z_k,b                (gradient flows)
    R_k  <- lambda_R  * R_k  + (1 - lambda_R)  * (z_k - mu_k)^T (z_k - mu_k) / B

Scaling follows the official code, for which its defaults were tuned:

    logdet term = (logdet(R1 + eps I) + logdet(R2 + eps I)) / d
    alignment   = (1/(B d)) sum_{b,j} (z1_bj - z2_bj)^2      (torch's mse_loss)
    loss        = align_weight * alignment - logdet_weight * logdet term

which is (2/d) * (-J) with alpha' = align_weight / 2: the same minimizers and gradient
directions as the paper's form. Settings of the official runs (the commands in the code's
README): CIFAR-10 d = 64 (projector 2048-2048-64), align_weight = 250, lambda_R = lambda_mu =
0.01; CIFAR-100 d = 128, align_weight = 1000, 0.01; ImageNet-100 d = 128, align_weight = 500,
0.01; Tiny ImageNet d = 128, align_weight = 500, lambda_R = lambda_mu = 0.1; ImageNet-1k d = 512
(projector 8192-8192-512, batch 1536), align_weight = 2000, 0.1. Everywhere eps = 1e-8, R
initialized to I, logdet_weight = 1. covssl's default forgetting factor, 0.01, is the CIFAR one. Those runs l2-normalize the projector
outputs before the loss; pass normalized z1, z2 for these weights to be right.

The running statistics and the log-det are kept and computed in float64 (as the official
code does): with eps = 1e-8 and a weight of 0.01 on the past, R is close to singular whenever
the batch is small, and a float32 Cholesky then fails.

Distributed training: R is a function of the batch covariance; pass the globally gathered
z1, z2 so that every rank updates identical running estimates.
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``corinfomax`` is global (mu_k, R_k
updated from the gathered batch, divisor N global); its alignment (``mse``) is local.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from covssl._checks import check_non_negative, check_pair, check_positive
from covssl.linalg import at_least_float32, logdet_spd


def _check_forgetting(value: object, name: str) -> float:
    value = check_non_negative(value, name)
    if value >= 1.0:
        raise ValueError(f"{name}: expected a weight in [0, 1) on the previous estimate, got {value!r}")
    return value


class CorInfoMaxRegularizer(nn.Module):
    """The log-det term of CorInfoMax with its running mean and covariance estimates.

    forward(z1, z2) = -(logdet(R1 + eps I) + logdet(R2 + eps I)) / d

    where R_k mixes the stored estimate (no gradient) with the current batch (gradient), as in
    the module docstring. In training mode each call advances the stored estimates by one step
    (call it once per optimizer step); in eval mode the loss is computed the same way but the
    buffers are left untouched, so a validation pass does not perturb training.

    The buffers ``r1, r2`` (d, d), ``mu1, mu2`` (d,) and ``steps`` are part of ``state_dict``,
    so checkpoints resume the estimates exactly; :meth:`reset_state` restores R = r_init * I,
    mu = 0.

    Args:
        dim: embedding dimension d.
        eps: diagonal perturbation eps > 0 (official: 1e-8).
        lambda_r: weight of the previous covariance estimate, in [0, 1) (official: 0.01).
        lambda_mu: weight of the previous mean estimate, in [0, 1) (official: 0.01).
        r_init: R starts at r_init * I, > 0 (official: 1.0).

    Examples:
        >>> reg = CorInfoMaxRegularizer(dim=16)
        >>> z1, z2 = torch.randn(32, 16), torch.randn(32, 16)
        >>> reg(z1, z2).shape
        torch.Size([])
        >>> int(reg.steps)
        1
    """

    r1: torch.Tensor
    r2: torch.Tensor
    mu1: torch.Tensor
    mu2: torch.Tensor
    steps: torch.Tensor

    def __init__(
        self,
        dim: int,
        eps: float = 1e-8,
        lambda_r: float = 0.01,
        lambda_mu: float = 0.01,
        r_init: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected a positive int, got {dim!r}")
        self.dim = dim
        self.eps = check_positive(eps, "eps")
        self.lambda_r = _check_forgetting(lambda_r, "lambda_r")
        self.lambda_mu = _check_forgetting(lambda_mu, "lambda_mu")
        self.r_init = check_positive(r_init, "r_init")
        for name in ("r1", "r2"):
            self.register_buffer(name, torch.empty(dim, dim, dtype=torch.float64))
        for name in ("mu1", "mu2"):
            self.register_buffer(name, torch.empty(dim, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.reset_state()

    @torch.no_grad()
    def reset_state(self) -> None:
        """Restore the initial estimates R1 = R2 = r_init * I, mu1 = mu2 = 0, steps = 0."""
        eye = torch.eye(self.dim, dtype=self.r1.dtype, device=self.r1.device)
        self.r1.copy_(self.r_init * eye)
        self.r2.copy_(self.r_init * eye)
        self.mu1.zero_()
        self.mu2.zero_()
        self.steps.zero_()

    def _branch(self, z: torch.Tensor, r_prev: torch.Tensor, mu_prev: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """New (mu, R) for one branch and logdet(R + eps I), all float64, gradient through z."""
        z = z.double()  # float64 like the running state: see the module docstring
        mu = self.lambda_mu * mu_prev.double() + (1 - self.lambda_mu) * z.mean(dim=0)  # (d,)
        zc = z - mu  # (B, d)
        r_batch = zc.T @ zc / z.shape[0]  # (d, B) @ (B, d) -> (d, d), divisor B as in [0]
        r = self.lambda_r * r_prev.double() + (1 - self.lambda_r) * r_batch
        eye = torch.eye(self.dim, dtype=r.dtype, device=r.device)
        return mu, r, logdet_spd(r + self.eps * eye, name="R + eps I")

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """-(logdet(R1 + eps I) + logdet(R2 + eps I)) / d, updating the estimates in training.

        Args:
            z1: embeddings of the first view, shape (batch, dim), batch >= 2.
            z2: embeddings of the second view, shape (batch, dim).

        Returns:
            Scalar tensor, in the dtype of z promoted to at least float32.
        """
        check_pair(z1, z2)
        if z1.shape[1] != self.dim:
            raise ValueError(f"z1: expected {self.dim} columns (the regularizer's dim), got shape {tuple(z1.shape)}")
        out_dtype = at_least_float32(z1).dtype
        with torch.autocast(device_type=z1.device.type, enabled=False):
            mu1, r1, logdet1 = self._branch(z1, self.r1, self.mu1)
            mu2, r2, logdet2 = self._branch(z2, self.r2, self.mu2)
        if self.training:
            with torch.no_grad():
                # The stored estimates never carry a graph: the next step treats them as constants.
                self.r1.copy_(r1)
                self.r2.copy_(r2)
                self.mu1.copy_(mu1)
                self.mu2.copy_(mu2)
                self.steps.add_(1)
        return (-(logdet1 + logdet2) / self.dim).to(out_dtype)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, eps={self.eps}, lambda_r={self.lambda_r}, "
            f"lambda_mu={self.lambda_mu}, r_init={self.r_init}"
        )


def corinfomax_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    regularizer: CorInfoMaxRegularizer,
    align_weight: float = 250.0,
    logdet_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The CorInfoMax objective, scaled as in the official code (module docstring).

    alignment = (1/(B d)) sum_{b,j} (z1_bj - z2_bj)^2
    logdet    = (logdet(R1 + eps I) + logdet(R2 + eps I)) / d      (= -regularizer(z1, z2))
    loss      = align_weight * alignment - logdet_weight * logdet

    Args:
        z1: embeddings of the first view, shape (batch, dim); l2-normalized in the official runs.
        z2: embeddings of the second view, shape (batch, dim).
        regularizer: the :class:`CorInfoMaxRegularizer` holding the running estimates; this
            call advances it by one step in training mode.
        align_weight: alpha, the weight of the alignment, >= 0 (official: 250 for CIFAR-10,
            1000 for CIFAR-100, 500 for Tiny ImageNet / ImageNet-100).
        logdet_weight: the weight of the log-det term, >= 0 (official: 1).

    Returns:
        Dict with "loss" and the unweighted "alignment" and "logdet" terms (scalar tensors).
        "logdet" is to be maximized; it enters "loss" with a minus sign.

    Examples:
        >>> reg = CorInfoMaxRegularizer(dim=8)
        >>> z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
        >>> sorted(corinfomax_loss(z1, z2, reg))
        ['alignment', 'logdet', 'loss']
    """
    check_pair(z1, z2)
    if not isinstance(regularizer, CorInfoMaxRegularizer):
        raise ValueError(f"regularizer: expected a CorInfoMaxRegularizer, got {type(regularizer).__name__}")
    align_weight = check_non_negative(align_weight, "align_weight")
    logdet_weight = check_non_negative(logdet_weight, "logdet_weight")
    with torch.autocast(device_type=z1.device.type, enabled=False):
        alignment = F.mse_loss(at_least_float32(z1), at_least_float32(z2))
    logdet = -regularizer(z1, z2)
    loss = align_weight * alignment - logdet_weight * logdet
    return {"loss": loss, "alignment": alignment, "logdet": logdet}

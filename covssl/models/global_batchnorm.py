"""BatchNorm over the global batch on any backend (torch's SyncBatchNorm is CUDA-only).

Covariance objectives see the global batch; the projector's BatchNorm should normalize with the
same statistics, or a 2-process run differs from a 1-process run with the same global batch.
On CUDA :func:`convert_sync_batchnorm` uses torch's ``nn.SyncBatchNorm``; elsewhere (gloo on CPU)
it uses :class:`GlobalBatchNorm`, whose moments are all-reduced across ranks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from covssl.distributed import is_distributed, rank, world_size

def _global_moments(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance over every rank's x, and the count n (no autograd).

    Each rank contributes (n_r, m_r, M2_r) -- its count, mean and sum of squared deviations,
    from one fused local pass -- and the ranks' rows are combined as Chan et al.'s parallel
    variance does, without the cancellation of E[x^2] - E[x]^2:

        n = sum_r n_r      mean = sum_r n_r m_r / n      var = (sum_r M2_r + n_r (m_r - mean)^2) / n
    """
    channels = x.shape[1]
    local_var, local_mean = torch.var_mean(x, dim=dims, correction=0)  # (C,) each
    count = x.new_full((1,), x.numel() // channels)
    table = x.new_zeros(world_size(), 2 * channels + 1)
    table[rank()] = torch.cat([count, local_mean, local_var * count])
    dist.all_reduce(table)  # an all-gather from one all-reduce: row r holds rank r's (n_r, m_r, M2_r)
    counts, means, m2s = table[:, :1], table[:, 1 : channels + 1], table[:, channels + 1 :]
    n = counts.sum()
    mean = (counts * means).sum(0) / n  # (C,)
    var = (m2s.sum(0) + (counts * (means - mean).square()).sum(0)) / n  # (C,)
    return mean, var, n


class _GlobalBatchNormFunction(torch.autograd.Function):
    """y = xhat * w + b with xhat = (x - mean) / sqrt(var + eps) over the global batch.

    Backward (the batch-norm gradient, with sums over the global batch, one all-reduce):

        dx = w / sqrt(var + eps) * (g - sum(g) / n - xhat * sum(g * xhat) / n)
        dw = sum_local(g * xhat)      db = sum_local(g)

    where g is the gradient reaching this rank's y; dw and db are this rank's share, which DDP
    averages over ranks like every other parameter gradient.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> Any:
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        mean, var, n = _global_moments(x, dims)
        invstd = torch.rsqrt(var + eps)  # (C,)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        y = xhat if weight is None else torch.addcmul(bias.view(shape), xhat, weight.view(shape))  # type: ignore[union-attr]
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.dims, ctx.shape, ctx.n = dims, shape, n
        ctx.mark_non_differentiable(mean, var, n)
        return y, mean, var, n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y: torch.Tensor, *_: Any) -> Any:
        xhat, invstd, weight = ctx.saved_tensors
        shape = ctx.shape
        local = torch.stack([grad_y.sum(ctx.dims), (grad_y * xhat).sum(ctx.dims)])  # (2, C): db, dw here
        sums = local.clone()
        dist.all_reduce(sums)  # every rank's loss reaches this rank's x through the shared mean and var
        scale = invstd if weight is None else invstd * weight
        grad_x = (grad_y - (sums[0] / ctx.n).view(shape) - xhat * (sums[1] / ctx.n).view(shape)) * scale.view(shape)
        affine = weight is not None
        return grad_x, local[1] if affine else None, local[0] if affine else None, None


class GlobalBatchNorm(_BatchNorm):
    """Batch normalization over the global batch, on any device (torch's SyncBatchNorm is GPU-only).

    In training, the per-channel mean and (biased) variance are those of the batch of all ranks,
    combined from each rank's local moments (:func:`_global_moments`), and the gradient is the
    batch-norm gradient with sums over all ranks (:class:`_GlobalBatchNormFunction`): one small
    all-reduce forward and one backward per layer, and about as many passes over x as torch's
    own CPU kernel. The running statistics take the unbiased variance var * n / (n - 1), as
    ``nn.BatchNorm*d`` does. Evaluation, or no process group, is plain batch norm. Statistics run
    in float32 or higher.

    [0] Ioffe, Szegedy, 2015, "Batch Normalization", https://arxiv.org/abs/1502.03167
    [1] Chan, Golub, LeVeque, 1983, "Algorithms for computing the sample variance: analysis and
        recommendations", The American Statistician 37(3), https://doi.org/10.1080/00031305.1983.10483115

    Examples:
        >>> bn = GlobalBatchNorm(4)
        >>> bn(torch.randn(8, 4)).shape  # no process group: plain BatchNorm
        torch.Size([8, 4])
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"input: expected (batch, channels, ...) with 2 or more dims, got shape {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if not (self.training and is_distributed()):
            return super().forward(input)
        x = input if input.dtype == torch.float64 else input.float()
        weight, bias = (self.weight, self.bias) if self.affine else (None, None)
        y, mean, var, n = _GlobalBatchNormFunction.apply(x, weight, bias, self.eps)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr, operator]
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (n / (n - 1).clamp(min=1))
                self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype), alpha=momentum)  # type: ignore[union-attr]
        return y.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm layer by one with global-batch statistics.

    ``nn.SyncBatchNorm`` on CUDA (fused kernels); :class:`GlobalBatchNorm` elsewhere, since
    torch's SyncBatchNorm refuses CPU tensors and DDP refuses it in CPU modules. Parameters and
    buffers are moved over, not copied (``requires_grad`` of a frozen EMA copy is kept).

    Args:
        module: the model (converted in place where possible).
        device: the training device.

    Returns:
        The converted module (a new object only when ``module`` itself is a BatchNorm layer).
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, _BatchNorm) and not isinstance(module, (GlobalBatchNorm, nn.SyncBatchNorm)):
        converted = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            converted.weight, converted.bias = module.weight, module.bias
        converted.running_mean, converted.running_var = module.running_mean, module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module

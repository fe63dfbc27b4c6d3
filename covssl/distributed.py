"""The single place that talks to torch.distributed.

Covariance regularizers are functions of the *global* batch: under data parallelism every rank
must see the embeddings of all ranks, and the gradient of the regularizer must flow back to the
rank that produced each row. ``gather`` does that through ``torch.distributed.nn``, whose
all-gather is differentiable (its backward sums the incoming gradients across ranks and returns
each rank its own slice). A plain ``torch.distributed.all_gather`` returns tensors without a
gradient, and a plain ``dist.all_reduce`` of batch statistics is invisible to autograd: a
regularizer computed on either trains only the local rows of the batch -- a bug shipped by
several SSL libraries.

Why the gradients come out exactly right (W ranks, equal local batches Z_1..Z_W of B rows, the
global batch Z = [Z_1; ...; Z_W] of N = W B rows, single-process loss L(Z) = A(Z) + R(Z)):

    A(Z) = (1/N) sum_i a(z_i) = (1/W) sum_r A_r(Z_r)      alignment: a mean over samples
    R(Z)                                                  regularizer: any function of Z

    rank r computes  L_r = A_r(Z_r) + R(gather(Z))        so (1/W) sum_r L_r = L(Z)
    backward on r:   dL_r/dZ_r = W dA/dZ_r                   (A_r = W A restricted to rank r's rows)
                     grad into Z_r from gather = sum_r' dR/dZ_r = W dR/dZ_r   (every rank holds R)
    so               g_r = W dL/dZ_r                         (one factor W for *both* terms)
    DDP averages     (1/W) sum_r J_r^T g_r = sum_r J_r^T dL/dZ_r = dL/dtheta   (J_r = dZ_r/dtheta)

Hence: global terms are evaluated on the gathered batch with no 1/W, local terms are *means*
over the local batch, DDP's default averaging does the rest, and no manual scaling is needed.
The same argument covers any chain of differentiable collectives (``all_reduce_sum``, the
batch-norm statistics of :class:`GlobalBatchNorm`): rank r's gradient is that of sum_r' L_r'.
What breaks it: a no-grad gather or all-reduce (the factor W is missing on R's gradient), a
global term divided by W, or a local term normalized by N instead of B.

Without an initialized process group every function here is the identity / a constant, so the
math layer stays usable in a notebook. Launch with ``torchrun`` (never a home-made launcher):
:func:`process_group` initializes the default group from torchrun's environment.
"""

from __future__ import annotations

import contextlib
import gc
import os
import warnings
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def is_distributed() -> bool:
    """True inside an initialized process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes in the default group (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process in the default group (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    """Rank of this process on its machine (torchrun's LOCAL_RANK; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on rank 0: the process that logs, checkpoints, evaluates and prints.

    Outside a process group (before it is created or after it is destroyed) torchrun's RANK
    decides, so a CLI that prints after training prints once, not once per rank.
    """
    return rank() == 0 if is_distributed() else int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    # recent torch (2.13 here) marks torch.distributed.nn.functional deprecated in favour of the private
    # _functional_collectives; it is still the public, differentiable API on every torch covssl supports.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional", category=FutureWarning)
        yield


def launched_by_torchrun() -> bool:
    """True when torchrun (or another env:// launcher) started this process with WORLD_SIZE > 1."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Initialize the default process group from torchrun's environment; destroy it on exit.

    nccl for CUDA devices (each rank on GPU ``LOCAL_RANK``), gloo otherwise. A no-op when the
    process was not launched by torchrun, or when the caller already initialized a group (which
    the caller then owns).

    Args:
        device: the device the run trains on; only its type matters.
    """
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        # What still references the group (DDP's reducer, autograd contexts of collectives) can sit
        # in reference cycles; freed only at interpreter exit, gloo then aborts the process
        # ("terminate called without an active exception", seen in ~1 of 7 runs before this).
        gc.collect()
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """Under torch.distributed on CUDA, rank's own GPU ``cuda:LOCAL_RANK``; ``device`` otherwise."""
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", local_rank())
    return device


def local_rows(global_batch: int) -> slice:
    """The rows of a global batch this rank processes: rank r gets [r B, (r + 1) B), B = N / W.

    Concatenating the ranks' rows in rank order gives the global batch back, which is the order
    ``gather`` returns, so a gathered statistic equals the single-process one on the same batch.

    Examples:
        >>> local_rows(8)  # no process group: every row
        slice(0, 8, None)
    """
    world = world_size()
    if global_batch % world:
        raise ValueError(f"global_batch: expected a multiple of the world size {world}, got {global_batch}")
    size = global_batch // world
    return slice(rank() * size, (rank() + 1) * size)


def gather(z: torch.Tensor) -> torch.Tensor:
    """Concatenate z (batch, ...) from all ranks along dim 0, with gradients flowing back.

    The backward of rank r returns the *sum over ranks* of the gradients that reach rows
    [r B, (r + 1) B) of the result (see the module docstring for why that is the right scale).

    Args:
        z: the local batch (batch, ...); every rank must pass the same shape.

    Returns:
        (world_size * batch, ...) in rank order; ``z`` itself without a process group.

    Examples:
        >>> gather(torch.ones(4, 8)).shape  # no process group: identity
        torch.Size([4, 8])
    """
    if not is_distributed():
        return z
    from torch.distributed.nn.functional import all_gather

    with _quiet_deprecation():
        return torch.cat(all_gather(z), dim=0)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of x over ranks (x itself without a process group).

    The backward all-reduces (sums) the gradient too, so a statistic built from per-rank sums
    (a global mean, a global covariance) sends every rank the gradient of every rank's loss.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_reduce

    with _quiet_deprecation():
        return all_reduce(x, op=dist.ReduceOp.SUM)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Differentiable mean of x over ranks (x itself without a process group)."""
    return all_reduce_sum(x) / world_size() if is_distributed() else x


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Average logged numbers over ranks (no gradient); every rank must pass the same keys.

    A per-rank loss holds the local alignment term; its mean over ranks is the loss of the
    global batch, the number a single-process run would log. A NaN on any rank makes the mean
    NaN on every rank, so all ranks take the same skip-or-stop decision.
    """
    if not is_distributed() or not values:
        return dict(values)
    packed = torch.tensor(list(values.values()), dtype=torch.float64)  # gloo and nccl reduce float64
    if dist.get_backend() == "nccl":
        packed = packed.cuda()
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    return {key: float(v) / world_size() for key, v in zip(values, packed.tolist())}


def max_over_ranks(value: int) -> int:
    """The largest of an integer over ranks (no gradient): e.g. "did any rank get a signal?"."""
    if not is_distributed():
        return value
    packed = torch.tensor([value], dtype=torch.int64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(packed, op=dist.ReduceOp.MAX)
    return int(packed.item())


def broadcast_object(obj: Any) -> Any:
    """Rank 0's (picklable) ``obj`` on every rank; ``obj`` itself without a process group."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if is_distributed():
        dist.barrier()


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

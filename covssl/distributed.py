"""The single place that talks to torch.distributed.

Covariance regularizers are functions of the *global* batch: under data parallelism every rank
must see the embeddings of all ranks, and the gradient of the regularizer must flow back to the
rank that produced each row. ``gather`` does that through ``torch.distributed.nn``, whose
all-gather is differentiable (its backward sums the incoming gradients across ranks and returns
each rank its own slice). A plain ``torch.distributed.all_gather`` returns tensors without a
gradient: a regularizer computed on it trains only the local rows of the batch — a bug shipped
by several SSL libraries.

Without an initialized process group every function here is the identity / a constant, so the
math layer stays usable in a notebook.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialized process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes in the default group (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process in the default group (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    """True on rank 0: the process that logs, checkpoints and evaluates."""
    return rank() == 0


def gather(z: torch.Tensor) -> torch.Tensor:
    """Concatenate z (batch, ...) from all ranks along dim 0, with gradients flowing back.

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

    return torch.cat(all_gather(z), dim=0)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Differentiable mean of x over ranks (x itself without a process group)."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x, op=dist.ReduceOp.SUM) / world_size()

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

"""One training step, the only one: everything that steps a model (the run, its timing, the experiments) calls it.

    views (under autocast) -> network -> objective (fp32) -> logged terms, averaged over ranks
    -> backward (through the grad scaler) -> unscale -> optional clipping -> finite check
    -> optimizer step, or the non-finite policy -> EMA target update

The non-finite policy: a NaN/inf loss term, network output or gradient either stops the run
(:class:`NonFiniteLossError`) or skips the step, leaving the weights, the optimizer state and
every buffer (BatchNorm statistics, running covariances, which the forward pass itself updates)
as they were before it. All ranks see the same averaged numbers, so they take the same decision.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from covssl import distributed
from covssl._checks import NonFiniteError, all_finite

log = logging.getLogger(__name__)

Views = tuple[torch.Tensor, ...]  # the global views, then any local views (multi-crop)


class NonFiniteLossError(RuntimeError):
    """Raised when a loss or gradient is NaN/inf and ``train.on_nonfinite`` is ``stop``."""


@dataclass
class StepParts:
    """What a training step works on; built once per run (or per timed copy)."""

    model: nn.Module  # the SSLModel: its parameters, buffers and EMA target
    network: nn.Module  # what the forward pass calls: the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # enabled only for fp16
    amp_dtype: torch.dtype | None  # autocast dtype of the network; None: fp32
    term_keys: list[str]  # the keys of ObjectiveOutput.as_floats(): logged as NaN when the network fails
    grad_clip: float | None = None  # clip the global gradient norm
    on_nonfinite: str = "stop"  # stop | skip


@dataclass
class StepResult:
    """What one step did."""

    values: dict[str, float]  # loss and every objective term, averaged over ranks
    z: torch.Tensor | None  # this rank's first-view embeddings (B, d), detached; None if the network failed
    skipped: list[str]  # what was non-finite when the step was skipped; empty when it was applied


def train_step(
    parts: StepParts, make_views: Callable[[], Views], ema_momentum: float | None = None, where: str = ""
) -> StepResult:
    """Run one optimizer step on the views ``make_views()`` returns (it is called under autocast).

    Args:
        parts: the model, optimizer, scaler and policies of the run.
        make_views: returns this rank's views, each (B, 3, S, S) (two, or multi-crop's global then
            local views), in the run's layout.
        ema_momentum: move the EMA target with this momentum after an applied step (None: no EMA).
        where: where the step is, for messages (e.g. "at step 12 (epoch 1)").

    Raises:
        NonFiniteLossError: something was non-finite and ``parts.on_nonfinite`` is "stop".
    """
    model, optimizer, scaler = parts.model, parts.optimizer, parts.scaler
    # the forward pass updates BatchNorm statistics and running covariances: kept to be restored on a skip
    saved = [b.detach().clone() for b in model.buffers()] if parts.on_nonfinite == "skip" else []
    amp = parts.amp_dtype
    with torch.autocast(_device_type(model), dtype=amp or torch.float32, enabled=amp is not None):
        views = make_views()
        try:
            output, z = parts.network(*views)
        except NonFiniteError:  # the network itself produced NaN/inf: the same policy as a NaN term
            output, z = None, None
    # averaged over ranks: the global batch's numbers, and one skip/stop decision for all
    values = distributed.mean_over_ranks(
        output.as_floats() if output is not None else dict.fromkeys(parts.term_keys, math.nan)
    )
    bad = [name for name, value in values.items() if not math.isfinite(value)] if output is not None else [
        "embeddings (network output)"
    ]
    optimizer.zero_grad(set_to_none=True)
    if not bad:
        scaler.scale(output.loss).backward()
        scaler.unscale_(optimizer)
        if parts.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), parts.grad_clip)
        if not all_finite(p.grad for p in model.parameters() if p.grad is not None):  # one device read
            bad = ["gradients"]
    if bad:
        _apply_nonfinite_policy(parts, saved, f"non-finite {', '.join(bad)} {where}".rstrip())
    else:
        scaler.step(optimizer)
        scaler.update()
        if ema_momentum is not None:
            model.update_target(ema_momentum)
    return StepResult(values, z, bad)


def _apply_nonfinite_policy(parts: StepParts, saved: list[torch.Tensor], message: str) -> None:
    """Stop, or undo what the failed step changed (gradients, buffers) and let the scaler back off."""
    if parts.on_nonfinite == "stop":
        raise NonFiniteLossError(message)
    log.warning("%s; step skipped", message)
    parts.optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        for buffer, before in zip(parts.model.buffers(), saved):
            buffer.copy_(before)
    parts.scaler.update()


def _device_type(model: nn.Module) -> str:
    parameter = next(model.parameters(), None)
    return parameter.device.type if parameter is not None else "cpu"

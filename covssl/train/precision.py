"""What the network trains in: ``train.precision`` resolved to an autocast dtype, by timing where asked.

``fastest`` times the candidates on a copy of the model and trains in the faster: whether bf16
pays off depends on the CPU (2.3x on an AMD EPYC Zen 4, 0.86x on an Intel Xeon with AVX512-BF16
but no AMX). On CUDA it is bf16, as ``auto``. The objective always runs in fp32.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from covssl.train.cpu import cpu_has_native_bf16
from covssl.train.step import Views
from covssl.train.timing import time_training_step

log = logging.getLogger(__name__)


def precision_candidates(requested: str, device: torch.device) -> list[str]:
    """The precisions a run may train in: ``fastest`` on a CPU with native bf16 -> fp32 and bf16.

    ``auto`` resolves to bf16 on CUDA and fp32 elsewhere, so that a run records what it ran in.

    Examples:
        >>> precision_candidates("auto", torch.device("cpu"))
        ['fp32']
        >>> precision_candidates("fp32", torch.device("cpu"))
        ['fp32']
        >>> precision_candidates("fastest", torch.device("cuda"))
        ['bf16']
    """
    if requested == "auto":
        return ["bf16" if device.type == "cuda" else "fp32"]
    if requested != "fastest":
        return [requested]
    if device.type == "cuda":
        return ["bf16"]
    if device.type == "cpu" and cpu_has_native_bf16():
        return ["fp32", "bf16"]
    return ["fp32"]  # emulated bf16 (or an unknown CPU, or MPS) is not worth timing


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the network (None: full fp32).

    ``fastest`` is resolved by timing (:func:`choose_precision`) before it gets here.

    Examples:
        >>> autocast_dtype("bf16", torch.device("cpu"))
        torch.bfloat16
    """
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "fastest":
        raise ValueError("train.precision: 'fastest' must be resolved by timing first (choose_precision)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def choose_precision(
    model: torch.nn.Module,
    make_views: Callable[[], Views],
    requested: str,
    device: torch.device,
    optim_config: object,
    time_all: bool,
) -> tuple[str, dict[str, float]]:
    """The precision to train in and the measured seconds per training step of each one timed.

    ``fastest`` times every candidate of :func:`precision_candidates` on a copy of ``model`` and
    returns the faster; any other value is returned as it is, timed only when ``time_all`` (a
    time budget needs the step time).

    Args:
        model: the run's model, not yet wrapped for DDP (it is copied, never changed).
        make_views: returns one step's views of this rank, from a private generator (the run's
            random streams do not move); called only when something is timed.
        requested: ``train.precision``.
        device: the training device.
        optim_config: the run's ``OptimConfig``.
        time_all: time the precision even when there is only one candidate.
    """
    candidates = precision_candidates(requested, device)
    if len(candidates) == 1 and not time_all:
        return candidates[0], {}
    seconds = {
        precision: time_training_step(model, make_views, autocast_dtype(precision, device), device, optim_config)
        for precision in candidates
    }
    return min(seconds, key=seconds.__getitem__), seconds


def warn_if_emulated(amp_dtype: torch.dtype | None, device: torch.device) -> None:
    """Warn when bf16 would be emulated (a CPU without AVX512-BF16 or AMX): slower than fp32."""
    if amp_dtype == torch.bfloat16 and device.type == "cpu" and cpu_has_native_bf16() is False:
        log.warning("train.precision=bf16 on a CPU without AVX512-BF16 or AMX: bf16 is emulated and slower "
                    "than fp32 here; set train.precision=fp32 or fastest")

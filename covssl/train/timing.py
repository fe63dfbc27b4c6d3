"""Measured step and evaluation times, for the time budget and the precision choice.

Both time a *copy* or a read-only pass: the run's weights, BatchNorm statistics, running
covariances and random streams are untouched by being measured.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from covssl.config import OptimConfig
from covssl.evaluate.features import encode
from covssl.train.optim import build_optimizer
from covssl.train.step import StepParts, Views, train_step


def time_training_step(
    model: nn.Module,
    make_views: Callable[[], Views],
    amp_dtype: torch.dtype | None,
    device: torch.device,
    optim_config: OptimConfig,
    steps: int = 3,
    warmup: int = 2,
) -> float:
    """Median wall seconds of one :func:`~covssl.train.step.train_step` of a copy of ``model``.

    Args:
        model: the run's model (an ``SSLModel``); it is deep-copied, never touched.
        make_views: a callable returning one step's views, in the run's layout (timed too:
            the augmentation is part of a step).
        amp_dtype: the autocast dtype to time (None: fp32).
        device: where the model lives.
        optim_config: the run's optimizer settings (the optimizer's own cost is part of a step).
        steps: timed steps (the median is returned), >= 1.
        warmup: untimed steps first (allocator, oneDNN/cuDNN kernel selection).
    """
    probe = copy.deepcopy(model)
    probe.train()
    # a tiny step size: the optimizer does all its work, and the copy cannot diverge while timed
    parts = StepParts(
        model=probe,
        network=probe,
        optimizer=build_optimizer(probe, optim_config, 1e-9),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        amp_dtype=amp_dtype,
        term_keys=["loss", *(t.name for t in probe.objective.term_specs)],
        grad_clip=optim_config.grad_clip,
    )
    times = []
    for i in range(warmup + steps):
        _synchronize(device)
        start = time.perf_counter()
        train_step(parts, make_views, where="while timing a training step")
        _synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    del probe, parts
    return statistics.median(times)


def time_encoding(
    encoder: nn.Module,
    images: np.ndarray,
    transform: nn.Module,
    device: torch.device,
    batch_size: int,
    total_images: int,
    batches: int = 2,
) -> float:
    """Seconds to encode ``total_images`` images, extrapolated from the last of a few timed batches.

    Args:
        encoder: the backbone (run in eval mode by ``encode``; its state is left as it was).
        images: (N, H, W, 3) uint8 evaluation images; the first ``batches * batch_size`` are used.
        transform: the evaluation transform.
        device: where the encoder lives.
        batch_size: the evaluation batch size.
        total_images: how many images one evaluation encodes (bank + queries).
        batches: timed batches; the first one warms up and is not counted when there are two or more.
    """
    sample = images[: batches * batch_size]
    per_image = []
    for start in range(0, len(sample), batch_size):
        chunk = sample[start : start + batch_size]
        _synchronize(device)
        began = time.perf_counter()
        encode(encoder, chunk, transform, device, batch_size)
        _synchronize(device)
        per_image.append((time.perf_counter() - began) / len(chunk))
    return (per_image[-1] if per_image else 0.0) * total_images


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

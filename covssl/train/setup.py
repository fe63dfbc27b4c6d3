"""The first phases of a run: set it up (folder, data, model, augmentation), then resume or start it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from covssl import distributed
from covssl.augment import TwoViewAugment
from covssl.config import RunConfig
from covssl.methods.model import build_model
from covssl.models.global_batchnorm import convert_sync_batchnorm
from covssl.train.checkpoint import load_checkpoint_file, load_latest
from covssl.train.data import load_splits
from covssl.train.evaluation import KnnEvaluator, QualityProbe, eval_transform
from covssl.train.optim import build_optimizer, scaled_lr
from covssl.train.precision import autocast_dtype, choose_precision, warn_if_emulated
from covssl.train.run import Run
from covssl.train.run_dir import prepare_run_dir
from covssl.train.state import TrainingState
from covssl.train.step import StepParts, Views

log = logging.getLogger(__name__)


def setup(config: RunConfig, device: torch.device, resume: bool, overwrite: bool) -> Run:
    """The run folder, the data, the model and the augmentation."""
    began = time.perf_counter()
    main = distributed.is_main_process()
    run_dir = prepare_run_dir(config, resume, overwrite) if main else Path(config.train.out_dir)
    torch.manual_seed(config.train.seed)
    splits = load_splits(config.data, config.train.seed)
    global_batch, world = config.train.batch_size, distributed.world_size()
    if global_batch % world:
        raise ValueError(f"train.batch_size: {global_batch} is not divisible by the world size {world}")
    if len(splits.train) // global_batch == 0:
        raise ValueError(
            f"train.batch_size: {global_batch} is larger than the training set ({len(splits.train)} images)"
        )
    memory_format = torch.channels_last if config.train.channels_last else torch.contiguous_format
    model = build_model(config).to(device).to(memory_format=memory_format)  # the conv weights; views follow
    augment = TwoViewAugment(config.augment).to(device)
    return Run(config, device, run_dir, splits, model, augment, memory_format, began)


def start(run: Run, resume: bool) -> TrainingState:
    """Resume from the newest good checkpoint, or start: choose the precision, score the baselines.

    Completes ``run`` (its training step's parts, evaluator, learning rate, and the measured
    seconds of one step per precision timed and of one kNN pass) and returns the run's state.
    """
    config, device = run.config, run.device
    loaded = _load_resume_state(run.run_dir, device) if resume else None
    run.resumed = loaded is not None
    step_seconds: dict[str, float] = {}
    if loaded is not None and "precision" in loaded[0]:
        precision = str(loaded[0]["precision"])  # a resumed run trains in what it started in
    else:
        precision, step_seconds = choose_precision(
            run.model, _timing_views(run), config.train.precision, device, config.optim,
            time_all=config.train.time_budget_minutes is not None,
        )
        precision, step_seconds = distributed.broadcast_object((precision, step_seconds))  # rank 0 decides
        if config.train.precision == "fastest" and run.main:
            timings = ", ".join(f"{name} {1000 * sec:.0f} ms" for name, sec in step_seconds.items())
            log.info("train.precision=fastest: %s (one training step: %s)", precision, timings)
    amp_dtype = autocast_dtype(precision, device)
    warn_if_emulated(amp_dtype, device)
    model, network = run.model, run.model
    if distributed.is_distributed():
        if config.model.sync_batchnorm:
            model = run.model = convert_sync_batchnorm(model, device)  # type: ignore[assignment]
        network = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run.evaluator = KnnEvaluator(run.splits, eval_transform(config).to(device), device, config.eval)
    if run.main and config.eval.probe_images > 0:
        run.probe = QualityProbe(run.splits, config, device)
    run.peak_lr = scaled_lr(config.optim, run.global_batch)
    optimizer = build_optimizer(model, config.optim, run.peak_lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    run.parts = StepParts(model, network, optimizer, scaler, amp_dtype,
                          term_keys=["loss", *(t.name for t in model.objective.term_specs)],
                          grad_clip=config.optim.grad_clip, on_nonfinite=config.train.on_nonfinite)
    run.step_seconds = step_seconds
    if loaded is not None:
        state = TrainingState.restore(loaded[0], model, optimizer, scaler, default_epochs=config.train.epochs)
        state.precision = precision
        if run.main:
            log.info("resumed from %s at step %d (epoch %d, position %d)", loaded[1], state.step, state.epoch,
                     state.position)
        return state
    state = TrainingState(epochs=config.train.epochs, precision=precision)
    if run.main and config.eval.baselines:
        began = time.perf_counter()
        state.baselines = {"random_init": run.evaluator.knn(model.backbone)}
        run.knn_seconds = time.perf_counter() - began
        state.baselines["raw_pixels"] = run.evaluator.knn_raw_pixels()
    return state


def _timing_views(run: Run) -> Callable[[], Views]:
    """Views of the first global batch for timing steps, from a private generator (loaded when first asked)."""
    generator = torch.Generator().manual_seed(run.config.train.seed)
    first_rows = torch.arange(run.global_batch)[distributed.local_rows(run.global_batch)].tolist()
    cache: list[torch.Tensor] = []

    def make_views() -> Views:
        if not cache:
            cache.append(run.splits.train.__getitems__(first_rows)[0].to(run.device))
        return run.views(cache[0], generator)

    return make_views


def _load_resume_state(run_dir: Path, device: torch.device) -> tuple[dict[str, Any], Path] | None:
    """Rank 0 picks the newest good checkpoint and every rank loads that same file (shared run folder)."""
    loaded = load_latest(run_dir, map_location=device) if distributed.is_main_process() else None
    chosen = distributed.broadcast_object(None if loaded is None else str(loaded[1]))
    if loaded is None and chosen is not None:
        loaded = load_checkpoint_file(Path(chosen), map_location=device), Path(chosen)
    return loaded

"""The training loop: plain PyTorch, exact resume, every objective term logged.

One step: fetch a batch of uint8 images (one numpy index) -> two augmented views on the
model's device -> backbone/projector (bf16 autocast on GPU) -> objective (fp32) -> backward ->
optional clipping -> optimizer step at the warm-up + cosine learning rate -> EMA target update.

Resume is exact: the data order of an epoch is a pure function of (seed, epoch), and the
checkpoint holds the model, optimizer, grad-scaler, EMA and RNG states plus the position in the
epoch — so N steps straight and k steps + resume + N-k steps give the same weights on a CPU.

Under torchrun, each rank takes its slice of every global batch (a seeded per-epoch permutation,
like DistributedSampler), augments it as one process would (:func:`augment_local_views`), and
DDP averages the gradients; the objective gathers the embeddings for its global terms (see
:mod:`covssl.distributed` for why no extra scaling is needed). Logged numbers are averaged over
ranks; rank 0 alone writes logs and checkpoints and evaluates; all ranks resume from the
checkpoint rank 0 picks.

With ``train.time_budget_minutes`` the number of epochs is planned from timed steps before the
first one and re-planned after each epoch (:mod:`covssl.train.budget`); ``train.precision=fastest``
is resolved by the same timing. Both decisions are rank 0's, broadcast, and stored in every
checkpoint, so a resumed run keeps them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import signal
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from covssl import distributed
from covssl._checks import NonFiniteError, all_finite
from covssl._machine import cpu_has_native_bf16
from covssl.models.global_batchnorm import convert_sync_batchnorm
from covssl.augment import TwoViewAugment, augment_view, sample_view_params
from covssl.augment.pipeline import to_unit_float
from covssl.config import RunConfig
from covssl.diagnostics import effective_rank, std_of_normalized
from covssl.methods.model import SSLModel, build_model
from covssl.models import cosine_momentum
from covssl.train.budget import (
    BudgetPlan,
    plan_epochs,
    precision_candidates,
    recent_pace,
    revised_epochs,
    time_encoding,
    time_training_step,
)
from covssl.train.checkpoint import load_checkpoint_file, load_latest, save_checkpoint
from covssl.train.data import load_splits
from covssl.train.evaluation import KnnEvaluator, eval_transform
from covssl.train.logs import CSVLog, TensorBoardLog
from covssl.train.optim import build_optimizer, scaled_lr, set_lr, warmup_cosine
from covssl.train.progress import progress_bar
from covssl.train.run_dir import prepare_run_dir

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised when a loss or gradient is NaN/inf and ``train.on_nonfinite`` is ``stop``."""


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    step: int
    knn: dict[str, float] = field(default_factory=dict)  # trained / random_init / raw_pixels
    linear_probe: float | None = None
    images_per_second: float = 0.0
    epochs: int = 0  # planned epochs (train.epochs, or what train.time_budget_minutes allowed)
    precision: str = ""  # what the network trained in (train.precision=fastest resolves to fp32 or bf16)
    wall_seconds: float = 0.0  # the whole run, data loading and evaluations included


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device: {name!r} asked for, but CUDA is not available")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the network (None: full fp32). The objective always runs in fp32.

    ``fastest`` is resolved by timing (:func:`choose_precision`) before it gets here.
    """
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "fastest":
        raise ValueError("train.precision: 'fastest' must be resolved by timing first (choose_precision)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def epoch_order(num_images: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of the training set used in ``epoch``: a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_images, generator=generator)


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the step and stops."""

    def __init__(self) -> None:
        self.raised: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, _frame: Any) -> None:
            self.raised = signum

        try:
            for s in previous:
                signal.signal(s, handler)
        except ValueError:  # not the main thread: signals cannot be caught here
            yield
            return
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _nonfinite_terms(values: dict[str, float]) -> list[str]:
    return [name for name, value in values.items() if not math.isfinite(value)]


def augment_generator(seed: int, step: int) -> torch.Generator:
    """The augmentation RNG of one step: a pure function of (seed, step), the same on every rank."""
    # Hashed, because torch's CPU generator keeps only the low 32 bits of its seed: an affine seed
    # like epoch_order's would replay the data-order stream of epoch k at step k.
    digest = hashlib.blake2b(f"covssl-augment:{seed}:{step}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little"))


def augment_local_views(
    augment: TwoViewAugment, images: torch.Tensor, global_batch: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's two views of its rows ``images`` of the global batch, as one process would make them.

    Every rank draws the random parameters of the *whole* global batch from the same generator
    (:func:`augment_generator`) and applies its own rows' share (``distributed.local_rows``): a
    sample's views depend neither on the rank that augments it nor on the world size, so 1 and
    N processes train on the same views, and a resumed run needs no augmentation RNG state.
    With one process this is ``augment(images, generator=generator)``.
    """
    rows = distributed.local_rows(global_batch)
    x = to_unit_float(images)
    height, width = x.shape[-2:]
    # both views' parameters first, in TwoViewAugment's order; ``order`` (jitter steps) is per call
    recipes = (augment.config.view1, augment.config.view2)
    params = [sample_view_params(global_batch, height, width, recipe, generator) for recipe in recipes]
    views = []
    for p in params:
        local = replace(p, **{f.name: getattr(p, f.name)[rows] for f in fields(p) if f.name != "order"})
        out = augment_view(x, local, augment.config.image_size, augment.blur_kernel)  # (B_local, 3, S, S)
        views.append(out.sub_(augment.mean.to(out.device)).div_(augment.std.to(out.device)))
    return views[0], views[1]


def choose_precision(
    model: SSLModel,
    augment: TwoViewAugment,
    load_images: Callable[[], torch.Tensor],
    global_batch: int,
    config: RunConfig,
    device: torch.device,
    memory_format: torch.memory_format,
    time_all: bool,
) -> tuple[str, dict[str, float]]:
    """The precision to train in and the measured seconds per training step of each one timed.

    ``train.precision=fastest`` times every candidate of :func:`precision_candidates` (fp32 and
    bf16 on a CPU with native bf16) on a copy of ``model`` and returns the faster; any other
    value is returned as it is, timed only when ``time_all`` (a time budget needs the step time).

    Args:
        model: the run's model, not yet wrapped for DDP (it is copied, never changed).
        augment: the run's augmentation; views are drawn from a private generator, so the run's
            random streams do not move.
        load_images: returns this rank's rows of one global batch (uint8); called only when
            something is timed.
        global_batch: the global batch size.
        config: the run's config.
        device: the training device.
        memory_format: the views' layout (channels_last or contiguous).
        time_all: time the precision even when there is only one candidate.
    """
    candidates = precision_candidates(config.train.precision, device)
    if len(candidates) == 1 and not time_all:
        return candidates[0], {}
    generator = torch.Generator().manual_seed(config.train.seed)
    images = load_images()

    def make_views() -> tuple[torch.Tensor, torch.Tensor]:
        views = augment_local_views(augment, images, global_batch, generator)
        return views[0].contiguous(memory_format=memory_format), views[1].contiguous(memory_format=memory_format)

    seconds = {
        precision: time_training_step(model, make_views, autocast_dtype(precision, device), device, config.optim)
        for precision in candidates
    }
    return min(seconds, key=seconds.__getitem__), seconds


def _plan_budget(
    config: RunConfig, elapsed: float, epoch_seconds: float, knn_seconds: float, epochs_done: int = 0
) -> BudgetPlan:
    """``plan_epochs`` with the run's budget, evaluation schedule and epoch cap.

    The final evaluation is one kNN pass (the probe reuses its features; L-BFGS on them takes
    seconds, inside the plan's margin).
    """
    return plan_epochs(
        budget_seconds=60.0 * config.train.time_budget_minutes,  # type: ignore[operator]
        elapsed_seconds=elapsed,
        epoch_seconds=epoch_seconds,
        knn_seconds=knn_seconds,
        final_seconds=knn_seconds,
        knn_every=config.train.knn_every,
        max_epochs=config.train.epochs,
        epochs_done=epochs_done,
    )


def _schedule_steps(config: RunConfig, epochs: int, steps_per_epoch: int) -> tuple[int, int]:
    """(total, warm-up) steps of the learning-rate schedule for a run of ``epochs`` epochs.

    Under a time budget the warm-up keeps its share of the schedule (optim.warmup_epochs out of
    train.epochs), so that a budget that allows few epochs still has a cosine decay.
    """
    warmup_epochs = config.optim.warmup_epochs
    if config.train.time_budget_minutes is not None:
        warmup_epochs *= epochs / config.train.epochs
    return epochs * steps_per_epoch, round(warmup_epochs * steps_per_epoch)


def _load_resume_state(run_dir: Path, device: torch.device) -> tuple[dict[str, Any], Path] | None:
    """Rank 0 picks the newest good checkpoint and every rank loads that same file (shared run folder)."""
    loaded = load_latest(run_dir, map_location=device) if distributed.is_main_process() else None
    chosen = distributed.broadcast_object(None if loaded is None else str(loaded[1]))
    if loaded is None and chosen is not None:
        loaded = load_checkpoint_file(Path(chosen), map_location=device), Path(chosen)
    return loaded


def _checkpoint_state(
    model: SSLModel, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, step: int, epoch: int,
    position: int, baselines: dict[str, float], run_plan: dict[str, Any],
) -> dict[str, Any]:
    state: dict[str, Any] = {
        **run_plan,  # "epochs" (planned) and "precision" (resolved): a resumed run keeps both
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "epoch": epoch,
        "position": position,  # steps already done in `epoch`
        "rng_cpu": torch.get_rng_state(),
        "baselines": dict(baselines),
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    return state


def train(config: RunConfig, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train the model a resolved :class:`RunConfig` describes; see the module docstring.

    Launched by ``torchrun`` (RANK / WORLD_SIZE in the environment), the process group is
    created here (nccl on CUDA, gloo on CPU) and destroyed when training ends.
    """
    device = resolve_device(config.train.device)
    with distributed.process_group(device):
        return _train(config, distributed.local_device(device), resume, overwrite)


def _train(config: RunConfig, device: torch.device, resume: bool, overwrite: bool) -> TrainResult:
    run_started = time.perf_counter()
    main = distributed.is_main_process()
    run_dir = prepare_run_dir(config, resume, overwrite) if main else Path(config.train.out_dir)
    torch.manual_seed(config.train.seed)
    splits = load_splits(config.data, config.train.seed)
    world = distributed.world_size()
    global_batch = config.train.batch_size
    if global_batch % world:
        raise ValueError(f"train.batch_size: {global_batch} is not divisible by the world size {world}")
    steps_per_epoch = len(splits.train) // global_batch
    if steps_per_epoch == 0:
        raise ValueError(
            f"train.batch_size: {global_batch} is larger than the training set ({len(splits.train)} images)"
        )

    model = build_model(config).to(device)
    memory_format = torch.channels_last if config.train.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)  # the conv weights; the views follow below
    augment = TwoViewAugment(config.augment).to(device)
    loaded = _load_resume_state(run_dir, device) if resume else None
    budget = config.train.time_budget_minutes
    step_seconds: dict[str, float] = {}
    if loaded is not None and "precision" in loaded[0]:
        precision = str(loaded[0]["precision"])  # a resumed run trains in what it started in
    else:
        first_rows = torch.arange(global_batch)[distributed.local_rows(global_batch)].tolist()
        precision, step_seconds = choose_precision(
            model, augment, lambda: splits.train.__getitems__(first_rows)[0].to(device), global_batch, config,
            device, memory_format, time_all=budget is not None,
        )
        precision, step_seconds = distributed.broadcast_object((precision, step_seconds))  # rank 0 decides
        if config.train.precision == "fastest" and main:
            timings = ", ".join(f"{name} {1000 * sec:.0f} ms" for name, sec in step_seconds.items())
            log.info("train.precision=fastest: %s (one training step: %s)", precision, timings)
    amp_dtype = autocast_dtype(precision, device)
    if amp_dtype == torch.bfloat16 and device.type == "cpu" and cpu_has_native_bf16() is False:
        log.warning("train.precision=bf16 on a CPU without AVX512-BF16 or AMX: bf16 is emulated and slower "
                    "than fp32 here; set train.precision=fp32 or fastest (benchmarks/layout_precision.py measures both)")
    wrapped: nn.Module = model
    if distributed.is_distributed():
        if config.model.sync_batchnorm:
            model = convert_sync_batchnorm(model, device)  # type: ignore[assignment]
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    evaluator = KnnEvaluator(splits, eval_transform(config).to(device), device, config.eval)
    peak_lr = scaled_lr(config.optim, global_batch)
    optimizer = build_optimizer(model, config.optim, peak_lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    step, epoch, position, baselines = 0, 0, 0, {}
    epochs = config.train.epochs
    knn_seconds: float | None = None  # one kNN evaluation, when measured
    if loaded is not None:
        state, path = loaded
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step, epoch, position = int(state["step"]), int(state["epoch"]), int(state["position"])
        baselines = {k: float(v) for k, v in state["baselines"].items()}
        epochs = int(state.get("epochs", epochs))  # a budgeted run finishes the epochs it planned
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        if main:
            log.info("resumed from %s at step %d (epoch %d, position %d)", path, step, epoch, position)
    elif main and config.eval.baselines:
        began = time.perf_counter()
        baselines = {"random_init": evaluator.knn(model.backbone)}
        knn_seconds = time.perf_counter() - began
        baselines["raw_pixels"] = evaluator.knn_raw_pixels()

    plan: BudgetPlan | None = None
    replanning = budget is not None and loaded is None  # a resumed run finishes its stored plan
    if replanning:
        if main:
            if knn_seconds is None:
                knn_seconds = time_encoding(
                    model.backbone, splits.bank.images, evaluator.transform, device, config.eval.batch_size,
                    total_images=len(splits.bank) + len(splits.test),
                )
            plan = _plan_budget(config, time.perf_counter() - run_started,
                                step_seconds[precision] * steps_per_epoch, knn_seconds)
            log.info("%s", plan.describe())
            if plan.predicted_seconds > plan.budget_seconds:
                log.warning("train.time_budget_minutes=%g is too short for even one epoch of this run",
                            config.train.time_budget_minutes)
        epochs = distributed.broadcast_object(plan.epochs if plan is not None else None)
    total_steps, warmup_steps = _schedule_steps(config, epochs, steps_per_epoch)

    step_log, epoch_log = CSVLog(run_dir / "steps.csv", "step"), CSVLog(run_dir / "epochs.csv", "epoch")
    if main:
        step_log.truncate_after(step)
        epoch_log.truncate_after(epoch - 1)  # completed epochs are those before `epoch`
    board = TensorBoardLog(run_dir / "tensorboard") if main else None
    stop = _StopFlag()
    max_steps = config.train.max_steps or total_steps
    # the keys of ObjectiveOutput.as_floats(): a rank whose network output is NaN logs NaN for each
    term_keys = ["loss", *(t.name for t in model.objective.term_specs)]
    images_seen, started = 0, time.perf_counter()
    epoch_seconds: list[float] = []  # each complete epoch of this process: steps, logs, checkpoint (no kNN)
    result = TrainResult(run_dir, step)

    with stop.installed(), progress_bar(enabled=config.train.progress and main, total=min(max_steps, total_steps)) as bar:
        bar.advance_to(step)
        while epoch < epochs and step < max_steps and stop.raised is None:
            order = epoch_order(len(splits.train), config.train.seed, epoch)
            epoch_began, epoch_knn_seconds = time.perf_counter(), 0.0
            last_z: torch.Tensor | None = None
            epoch_losses: list[float] = []
            while position < steps_per_epoch and step < max_steps and stop.raised is None:
                batch_idx = order[position * global_batch : (position + 1) * global_batch]
                local_idx = batch_idx[distributed.local_rows(global_batch)]  # this rank's share
                images, _ = splits.train.__getitems__(local_idx.tolist())
                images = images.to(device, non_blocking=True)
                lr = warmup_cosine(step, total_steps, warmup_steps, peak_lr, config.optim.final_lr_ratio)
                set_lr(optimizer, lr)
                generator = augment_generator(config.train.seed, step)
                # BatchNorm statistics and running covariances are updated by the forward pass itself:
                # kept to be restored if this step is skipped
                buffers = [b.detach().clone() for b in model.buffers()] if config.train.on_nonfinite == "skip" else []
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    view1, view2 = augment_local_views(augment, images, global_batch, generator)
                    view1, view2 = (v.contiguous(memory_format=memory_format) for v in (view1, view2))
                    try:
                        output, z1 = wrapped(view1, view2)
                    except NonFiniteError:  # the network itself produced NaN/inf: same policy as a NaN term
                        output, z1 = None, None
                # averaged over ranks: the global batch's numbers, and one skip/stop decision for all
                values = distributed.mean_over_ranks(
                    output.as_floats() if output is not None else dict.fromkeys(term_keys, math.nan)
                )
                bad_terms = _nonfinite_terms(values) if output is not None else ["embeddings (network output)"]
                optimizer.zero_grad(set_to_none=True)
                if not bad_terms:
                    scaler.scale(output.loss).backward()
                    scaler.unscale_(optimizer)
                    if config.optim.grad_clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                    if not all_finite(p.grad for p in model.parameters() if p.grad is not None):  # one device read
                        bad_terms = ["gradients"]
                if bad_terms:
                    message = f"non-finite {', '.join(bad_terms)} at step {step} (epoch {epoch})"
                    if config.train.on_nonfinite == "stop":
                        raise NonFiniteLossError(f"{message}; the last good checkpoint is kept in {run_dir}")
                    log.warning("%s; step skipped", message)
                    optimizer.zero_grad(set_to_none=True)
                    with torch.no_grad():
                        for buffer, saved in zip(model.buffers(), buffers):
                            buffer.copy_(saved)
                    scaler.update()
                else:
                    scaler.step(optimizer)
                    scaler.update()
                    if config.model.ema_momentum is not None:
                        model.update_target(cosine_momentum(step, total_steps, base=config.model.ema_momentum))
                step += 1
                position += 1
                images_seen += global_batch
                last_z = z1 if z1 is not None else last_z
                epoch_losses.append(values["loss"])
                if main and (step % config.train.log_every == 0 or step == 1):
                    row = {"step": step, "epoch": epoch, "lr": lr, **values}
                    step_log.write(row)
                    board.write("train", row, step)  # type: ignore[union-attr]
                bar.update(step, f"epoch {epoch + 1}/{epochs} loss {values['loss']:.4f}")
                stop.raised = distributed.max_over_ranks(stop.raised or 0) or None  # all ranks stop together
            if position >= steps_per_epoch:  # the epoch is complete
                if last_z is not None and distributed.is_distributed():
                    last_z = distributed.gather(last_z)  # collapse indicators of the global batch
                if main:
                    row = {"epoch": epoch, "step": step, "loss": sum(epoch_losses) / max(1, len(epoch_losses))}
                    if last_z is not None:
                        row["std_of_normalized"] = float(std_of_normalized(last_z))
                        row["effective_rank"] = float(effective_rank(last_z))
                        row["std_of_normalized_healthy"] = 1.0 / math.sqrt(last_z.shape[1])
                    every = config.train.knn_every
                    if every and (epoch + 1) % every == 0 and epoch + 1 < epochs:
                        began = time.perf_counter()
                        row["knn_top1"] = evaluator.knn(model.backbone)
                        knn_seconds = epoch_knn_seconds = time.perf_counter() - began
                    epoch_log.write(row)
                    board.write("epoch", row, step)  # type: ignore[union-attr]
                epoch, position = epoch + 1, 0
            if main:
                run_plan = {"epochs": epochs, "precision": precision}
                state = _checkpoint_state(model, optimizer, scaler, step, epoch, position, baselines, run_plan)
                save_checkpoint(state, run_dir, step, config.train.keep_checkpoints)
            if position == 0:  # an epoch is done and saved
                epoch_seconds.append(time.perf_counter() - epoch_began - epoch_knn_seconds)
            if replanning and position == 0 and 0 < epoch < epochs:  # plan again from the recent pace
                if main:
                    again = _plan_budget(config, time.perf_counter() - run_started, recent_pace(epoch_seconds),
                                         knn_seconds, epochs_done=epoch)  # type: ignore[arg-type]
                    revised = revised_epochs(epochs, again)
                    if revised != epochs:
                        plan = replace(again, epochs=revised)
                        log.info("after epoch %d: %s", epoch, plan.describe())
                new_epochs = distributed.broadcast_object(plan.epochs if plan is not None else None)
                if new_epochs != epochs:
                    epochs = new_epochs
                    total_steps, warmup_steps = _schedule_steps(config, epochs, steps_per_epoch)
                    max_steps = config.train.max_steps or total_steps
                    bar.set_total(min(max_steps, total_steps))
        elapsed = time.perf_counter() - started
    result.step = step
    result.epochs, result.precision = epochs, precision
    result.images_per_second = images_seen / elapsed if elapsed > 0 else 0.0
    if stop.raised is not None:
        log.warning("stopped by signal %d at step %d; resume with --resume", stop.raised, step)
        raise KeyboardInterrupt(f"stopped at step {step}; checkpoint saved in {run_dir}")
    if main:
        knn, result.linear_probe = evaluator.knn_and_probe(
            model.backbone, config.eval.linear_epochs if config.eval.linear_probe else None
        )
        result.knn = {"trained": knn, **baselines}
        result.wall_seconds = time.perf_counter() - run_started
        summary = {
            "step": step, "knn_top1": result.knn, "linear_probe_top1": result.linear_probe,
            "images_per_second": result.images_per_second, "epochs": epochs, "precision": precision,
            "wall_seconds": result.wall_seconds, "time_budget_minutes": budget,
        }
        (run_dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
        board.close()  # type: ignore[union-attr]
    return result

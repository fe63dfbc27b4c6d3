"""The later phases of a run: plan the epochs, train them (steps, epoch ends, checkpoints), finish.

A time-budgeted run plans its epochs before the first step and again after every epoch
(:mod:`covssl.train.budget`); a resumed run finishes the plan stored in its checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace

import torch

from covssl import distributed
from covssl.config import RunConfig
from covssl.diagnostics import effective_rank, label_free_metrics, std_of_normalized
from covssl.models import cosine_momentum
from covssl.train.budget import BudgetPlan, plan_epochs, recent_pace, revised_epochs
from covssl.train.checkpoint import save_checkpoint
from covssl.train.logs import CSVLog, TensorBoardLog
from covssl.train.optim import set_lr, warmup_cosine
from covssl.train.progress import progress_bar
from covssl.train.randomness import StopFlag, augment_generator, epoch_order
from covssl.train.run import Run, TrainResult
from covssl.train.state import TrainingState
from covssl.train.step import NonFiniteLossError, StepResult, train_step
from covssl.train.timing import time_encoding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule's length for a run of some number of epochs."""

    total_steps: int
    warmup_steps: int
    max_steps: int  # train.max_steps, or the whole schedule

    @classmethod
    def of(cls, config: RunConfig, epochs: int, steps_per_epoch: int) -> "Schedule":
        """Under a time budget the warm-up keeps its share of the schedule (optim.warmup_epochs out of
        train.epochs), so that a budget that allows few epochs still has a cosine decay."""
        warmup_epochs = config.optim.warmup_epochs
        if config.train.time_budget_minutes is not None:
            warmup_epochs *= epochs / config.train.epochs
        total = epochs * steps_per_epoch
        return cls(total, round(warmup_epochs * steps_per_epoch), config.train.max_steps or total)


@dataclass
class Budget:
    """The time budget's plan and the measurements it is re-planned from (rank 0's; broadcast)."""

    replanning: bool = False  # a fresh run under train.time_budget_minutes
    plan: BudgetPlan | None = None
    knn_seconds: float | None = None  # one kNN evaluation
    epoch_seconds: list[float] = field(default_factory=list)  # each complete epoch (no kNN)

    @classmethod
    def planned(cls, run: Run, state: TrainingState) -> "Budget":
        """Plan a fresh budgeted run's epochs (``state.epochs``) from the timed steps."""
        config = run.config
        budget = cls(config.train.time_budget_minutes is not None and not run.resumed, None, run.knn_seconds)
        if not budget.replanning:
            return budget
        if run.main:
            if budget.knn_seconds is None:
                budget.knn_seconds = time_encoding(
                    run.model.backbone, run.splits.bank.images, run.evaluator.transform, run.device,  # type: ignore[union-attr]
                    config.eval.batch_size, total_images=len(run.splits.bank) + len(run.splits.test),
                )
            epoch = run.step_seconds[state.precision] * run.steps_per_epoch
            budget.plan = _plan(config, time.perf_counter() - run.began, epoch, budget.knn_seconds)
            log.info("%s", budget.plan.describe())
            if budget.plan.predicted_seconds > budget.plan.budget_seconds:
                log.warning("train.time_budget_minutes=%g is too short for even one epoch of this run",
                            config.train.time_budget_minutes)
        state.epochs = distributed.broadcast_object(budget.plan.epochs if budget.plan is not None else None)
        return budget

    def replan(self, run: Run, state: TrainingState) -> bool:
        """Plan again from the recent pace after an epoch; whether ``state.epochs`` changed."""
        if run.main:
            again = _plan(run.config, time.perf_counter() - run.began, recent_pace(self.epoch_seconds),
                          self.knn_seconds, epochs_done=state.epoch)  # type: ignore[arg-type]
            revised = revised_epochs(state.epochs, again)
            if revised != state.epochs:
                self.plan = replace(again, epochs=revised)
                log.info("after epoch %d: %s", state.epoch, self.plan.describe())
        new_epochs = distributed.broadcast_object(self.plan.epochs if self.plan is not None else None)
        changed = new_epochs != state.epochs
        state.epochs = new_epochs
        return changed


def _plan(config: RunConfig, elapsed: float, epoch_seconds: float, knn_seconds: float, epochs_done: int = 0
          ) -> BudgetPlan:
    """``plan_epochs`` with the run's budget, evaluation schedule and epoch cap (the final evaluation is
    one kNN pass: the probe reuses its features, and L-BFGS on them takes seconds, inside the margin)."""
    return plan_epochs(
        budget_seconds=60.0 * config.train.time_budget_minutes,  # type: ignore[operator]
        elapsed_seconds=elapsed, epoch_seconds=epoch_seconds, knn_seconds=knn_seconds,
        final_seconds=knn_seconds, knn_every=config.train.knn_every, max_epochs=config.train.epochs,
        epochs_done=epochs_done,
    )


@dataclass
class _Logs:
    steps: CSVLog
    epochs: CSVLog
    board: TensorBoardLog | None


def train_epochs(run: Run, state: TrainingState, budget: Budget) -> tuple[float, int | None]:
    """Train until the planned epochs (or train.max_steps) are done or a signal stops the run.

    A checkpoint is written after every epoch and when the run stops. Returns the training
    images per second and the signal that stopped the run (None: it ran to its end).
    """
    config, main = run.config, run.main
    schedule = Schedule.of(config, state.epochs, run.steps_per_epoch)
    logs = _Logs(CSVLog(run.run_dir / "steps.csv", "step"), CSVLog(run.run_dir / "epochs.csv", "epoch"),
                 TensorBoardLog(run.run_dir / "tensorboard") if main else None)
    if main:
        logs.steps.truncate_after(state.step)
        logs.epochs.truncate_after(state.epoch - 1)  # completed epochs are those before `epoch`
    stop, first_step, started = StopFlag(), state.step, time.perf_counter()
    bar_total = min(schedule.max_steps, schedule.total_steps)
    with stop.installed(), progress_bar(enabled=config.train.progress and main, total=bar_total) as bar:
        bar.advance_to(state.step)
        while state.epoch < state.epochs and state.step < schedule.max_steps and stop.raised is None:
            epoch_began, knn_seconds = time.perf_counter(), 0.0
            last_z, losses = None, []
            order = epoch_order(len(run.splits.train), config.train.seed, state.epoch)
            while state.position < run.steps_per_epoch and state.step < schedule.max_steps and stop.raised is None:
                result, lr = _step(run, state, schedule, order)
                state.step, state.position = state.step + 1, state.position + 1
                last_z = result.z if result.z is not None else last_z
                losses.append(result.values["loss"])
                if main and (state.step % config.train.log_every == 0 or state.step == 1):
                    row = {"step": state.step, "epoch": state.epoch, "lr": lr, **result.values}
                    logs.steps.write(row)
                    logs.board.write("train", row, state.step)  # type: ignore[union-attr]
                bar.update(state.step, f"epoch {state.epoch + 1}/{state.epochs} loss {result.values['loss']:.4f}")
                stop.raised = distributed.max_over_ranks(stop.raised or 0) or None  # all ranks stop together
            if state.position >= run.steps_per_epoch:
                knn_seconds = _end_epoch(run, state, budget, last_z, losses, logs)
            if main:
                parts = run.parts
                checkpoint = state.to_checkpoint(parts.model, parts.optimizer, parts.scaler)  # type: ignore[union-attr]
                save_checkpoint(checkpoint, run.run_dir, state.step, config.train.keep_checkpoints)
            if state.position == 0:  # an epoch is done and saved
                budget.epoch_seconds.append(time.perf_counter() - epoch_began - knn_seconds)
            if budget.replanning and state.position == 0 and 0 < state.epoch < state.epochs:
                if budget.replan(run, state):
                    schedule = Schedule.of(config, state.epochs, run.steps_per_epoch)
                    bar.set_total(min(schedule.max_steps, schedule.total_steps))
        elapsed = time.perf_counter() - started
    if logs.board is not None:
        logs.board.close()
    images = (state.step - first_step) * run.global_batch
    return (images / elapsed if elapsed > 0 else 0.0), stop.raised


def _step(run: Run, state: TrainingState, schedule: Schedule, order: torch.Tensor) -> tuple[StepResult, float]:
    """One training step on this rank's share of the next global batch of ``order``."""
    config, batch = run.config, run.global_batch
    batch_idx = order[state.position * batch : (state.position + 1) * batch]
    local_idx = batch_idx[distributed.local_rows(batch)]  # this rank's share
    images, _ = run.splits.train.__getitems__(local_idx.tolist())
    images = images.to(run.device, non_blocking=True)
    lr = warmup_cosine(state.step, schedule.total_steps, schedule.warmup_steps, run.peak_lr, config.optim.final_lr_ratio)
    set_lr(run.parts.optimizer, lr)  # type: ignore[union-attr]
    generator = augment_generator(config.train.seed, state.step)
    ema = None
    if config.model.ema_momentum is not None:
        ema = cosine_momentum(state.step, schedule.total_steps, base=config.model.ema_momentum)
    try:
        result = train_step(run.parts, lambda: run.views(images, generator), ema,  # type: ignore[arg-type]
                            where=f"at step {state.step} (epoch {state.epoch})")
    except NonFiniteLossError as error:
        raise NonFiniteLossError(f"{error}; the last good checkpoint is kept in {run.run_dir}") from None
    return result, lr


def _end_epoch(run: Run, state: TrainingState, budget: Budget, last_z: torch.Tensor | None, losses: list[float],
               logs: _Logs) -> float:
    """Log the epoch and move to the next; the seconds of the periodic evaluation (0.0 when none).

    Every epoch: the mean loss, the collapse indicators and the cheap label-free metrics of the
    last (gathered) batch of embeddings. Every ``train.knn_every`` epochs: kNN top-1 and the
    probe's label-free metrics (LiDAR, RankMe over several views of fixed training images).
    """
    if last_z is not None and distributed.is_distributed():
        last_z = distributed.gather(last_z)  # collapse indicators of the global batch
    knn_seconds = 0.0
    if run.main:
        row = {"epoch": state.epoch, "step": state.step, "loss": sum(losses) / max(1, len(losses))}
        if last_z is not None:
            row["std_of_normalized"] = float(std_of_normalized(last_z))
            row["effective_rank"] = float(effective_rank(last_z))
            row["std_of_normalized_healthy"] = 1.0 / math.sqrt(last_z.shape[1])
            row.update(label_free_metrics(last_z))
        every = run.config.train.knn_every
        if every and (state.epoch + 1) % every == 0 and state.epoch + 1 < state.epochs:
            began = time.perf_counter()
            row["knn_top1"] = run.evaluator.knn(run.model.backbone)  # type: ignore[union-attr]
            row.update(run.probe_metrics())
            budget.knn_seconds = knn_seconds = time.perf_counter() - began
        logs.epochs.write(row)
        logs.board.write("epoch", row, state.step)  # type: ignore[union-attr]
    state.epoch, state.position = state.epoch + 1, 0
    return knn_seconds


def finish(run: Run, state: TrainingState, images_per_second: float) -> TrainResult:
    """The final kNN (and linear probe) on rank 0, and ``results.json``."""
    result = TrainResult(run.run_dir, state.step, images_per_second=images_per_second, epochs=state.epochs,
                         precision=state.precision)
    if not run.main:
        return result
    config = run.config
    knn, result.linear_probe = run.evaluator.knn_and_probe(  # type: ignore[union-attr]
        run.model.backbone, config.eval.linear_epochs if config.eval.linear_probe else None
    )
    result.knn = {"trained": knn, **state.baselines}
    result.label_free = run.probe_metrics()
    result.wall_seconds = time.perf_counter() - run.began
    summary = {
        "step": state.step, "knn_top1": result.knn, "linear_probe_top1": result.linear_probe,
        "label_free": result.label_free,
        "images_per_second": images_per_second, "epochs": state.epochs, "precision": state.precision,
        "wall_seconds": result.wall_seconds, "time_budget_minutes": config.train.time_budget_minutes,
    }
    (run.run_dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return result

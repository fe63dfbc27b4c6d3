"""The training run, in phases: set up, resume or start, plan, epochs, finish.

Each step (:func:`covssl.train.step.train_step`): this rank's rows of a global batch of uint8
images -> two augmented views on the model's device -> backbone/projector (autocast) ->
objective (fp32) -> backward -> optional clipping -> optimizer step at the warm-up + cosine
learning rate -> EMA target update.

Resume is exact: the data order of an epoch and the augmentation of a step are pure functions of
the seed (:mod:`covssl.train.randomness`), and the checkpoint (:class:`TrainingState`) holds the
model, optimizer, grad-scaler, EMA and RNG states plus the position in the epoch, so N steps
straight and k steps + resume + N-k steps give the same weights on a CPU.

Under torchrun each rank takes its slice of every global batch (like DistributedSampler),
augments it as one process would, and DDP averages the gradients; the objective gathers the
embeddings for its global terms (:mod:`covssl.distributed`). Logged numbers are averaged over
ranks; rank 0 alone writes logs and checkpoints and evaluates; all ranks resume from the
checkpoint rank 0 picks. Under ``train.time_budget_minutes`` the epochs are planned from timed
steps and re-planned after each epoch (:mod:`covssl.train.budget`); that decision and the
precision (``train.precision=fastest``) are rank 0's, broadcast, and stored in every checkpoint.
"""

from __future__ import annotations

import logging

import torch

from covssl import distributed
from covssl.config import RunConfig
from covssl.train.epochs import Budget, finish, train_epochs
from covssl.train.randomness import augment_generator, epoch_order
from covssl.train.run import TrainResult
from covssl.train.setup import setup, start
from covssl.train.step import NonFiniteLossError

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "TrainResult", "augment_generator", "epoch_order", "resolve_device", "train"]


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch device (``auto``: CUDA when there is one)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device: {name!r} asked for, but CUDA is not available")
    return device


def train(config: RunConfig, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train the model a resolved :class:`RunConfig` describes; see the module docstring.

    Launched by ``torchrun`` (RANK / WORLD_SIZE in the environment), the process group is
    created here (nccl on CUDA, gloo on CPU) and destroyed when training ends.
    """
    device = resolve_device(config.train.device)
    with distributed.process_group(device):
        return _train(config, distributed.local_device(device), resume, overwrite)


def _train(config: RunConfig, device: torch.device, resume: bool, overwrite: bool) -> TrainResult:
    run = setup(config, device, resume, overwrite)  # run folder, data, model, augmentation
    state = start(run, resume)  # resume from a checkpoint, or choose the precision and score the baselines
    budget = Budget.planned(run, state)  # the epochs a time budget allows (a resumed run keeps its plan)
    images_per_second, stopped = train_epochs(run, state, budget)
    if stopped is not None:
        log.warning("stopped by signal %d at step %d; resume with --resume", stopped, state.step)
        raise KeyboardInterrupt(f"stopped at step {state.step}; checkpoint saved in {run.run_dir}")
    return finish(run, state, images_per_second)  # final kNN and probe, results.json

"""Everything a resume needs, in one object: where the run is, what it decided, and its modules' states.

A checkpoint is ``TrainingState.to_checkpoint(...)``; a resume is ``TrainingState.restore(...)``.
The data order is a pure function of (seed, epoch) and the augmentation of (seed, step), so the
position in the epoch plus the modules' and RNG states reproduce an uninterrupted run exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class TrainingState:
    """Progress and decisions of a run (the modules' states are read from and written to the modules)."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch in progress (completed epochs are those before it)
    position: int = 0  # steps already done in `epoch`
    epochs: int = 0  # planned epochs (train.epochs, or what the time budget allows)
    precision: str = ""  # what the network trains in (train.precision=fastest resolved by timing)
    baselines: dict[str, float] = field(default_factory=dict)  # kNN of random init and raw pixels

    def to_checkpoint(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
    ) -> dict[str, Any]:
        """The checkpoint dictionary: this state, the modules' state dicts and the RNG states."""
        state: dict[str, Any] = {
            "epochs": self.epochs,  # a resumed run finishes the epochs it planned ...
            "precision": self.precision,  # ... in the precision it started in
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "rng_cpu": torch.get_rng_state(),
            "baselines": dict(self.baselines),
        }
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    @classmethod
    def restore(
        cls,
        checkpoint: dict[str, Any],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        default_epochs: int,
    ) -> "TrainingState":
        """Load a checkpoint into the modules and the RNG, and return the run's state at that point.

        Args:
            checkpoint: a dictionary written by :meth:`to_checkpoint` (already verified and loaded).
            model, optimizer, scaler: the run's modules, built as for a fresh run.
            default_epochs: the planned epochs of checkpoints that do not store them.
        """
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        torch.set_rng_state(checkpoint["rng_cpu"])
        if "rng_cuda" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["rng_cuda"])
        return cls(
            step=int(checkpoint["step"]),
            epoch=int(checkpoint["epoch"]),
            position=int(checkpoint["position"]),
            epochs=int(checkpoint.get("epochs", default_epochs)),
            precision=str(checkpoint.get("precision", "")),
            baselines={k: float(v) for k, v in checkpoint["baselines"].items()},
        )

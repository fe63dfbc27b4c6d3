"""Exponential-moving-average target network (BYOL) and its cosine momentum schedule.

[0] Grill, Strub, Altché, Tallec, Richemond, et al., 2020, "Bootstrap Your Own Latent: A New
    Approach to Self-Supervised Learning", https://arxiv.org/abs/2006.07733

    parameters:  xi <- tau * xi + (1 - tau) * theta     (target xi, online theta)
    buffers:     copied from the online network (BatchNorm running statistics)
    schedule:    tau_k = final - (final - base) * (cos(pi k / K) + 1) / 2
                 (BYOL: base 0.996, final 1, so tau_k = 1 - (1 - base) (cos(pi k / K) + 1) / 2)

Distributed training: under DDP every rank holds the same online weights after the optimizer
step, so every rank computes the same target; no communication is needed.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


def _check_momentum(value: object, name: str = "momentum") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return float(value)


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """BYOL's cosine schedule of the target momentum, from ``base`` at step 0 to ``final``.

    tau(step) = final - (final - base) * (cos(pi * step / total_steps) + 1) / 2

    Args:
        step: current optimizer step, >= 0; steps past ``total_steps`` give ``final``.
        total_steps: K, the number of steps of the whole run, >= 1.
        base: momentum at step 0, in [0, 1] (BYOL: 0.996).
        final: momentum at step K, in [0, 1] (BYOL: 1.0).

    Returns:
        The momentum as a Python float.

    Examples:
        >>> cosine_momentum(0, 100), cosine_momentum(100, 100)
        (0.996, 1.0)
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step: expected an integer >= 0, got {step!r}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps: expected an integer >= 1, got {total_steps!r}")
    base = _check_momentum(base, "base")
    final = _check_momentum(final, "final")
    progress = min(step, total_steps) / total_steps
    return final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


class EMATarget(nn.Module):
    """A frozen copy of a network that follows it by exponential moving average.

    target = m * target + (1 - m) * online for parameters; buffers are copied. The target's
    parameters never require gradients and its forward runs under ``torch.no_grad()``. Its
    train/eval mode follows the enclosing module (BYOL's target uses batch statistics in
    training). The momentum is saved in ``state_dict`` so that a resumed run continues exactly.

    Args:
        module: the online network to copy (pass the unwrapped module, not a DDP wrapper).
        momentum: default m for :meth:`update`, in [0, 1]; 1 freezes the target, 0 copies.

    Examples:
        >>> online = nn.Linear(4, 2)
        >>> target = EMATarget(online, momentum=0.99)
        >>> target.update(online)
        >>> target(torch.randn(3, 4)).requires_grad
        False
    """

    def __init__(self, module: nn.Module, momentum: float = 0.996) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ValueError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
        self.momentum = _check_momentum(momentum)
        self.module = copy.deepcopy(module)
        self.module.requires_grad_(False)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the target network without building a graph."""
        with torch.no_grad():
            return self.module(*args, **kwargs)

    @torch.no_grad()
    def update(self, online: nn.Module, momentum: float | None = None) -> None:
        """Move the target towards ``online``: target = m * target + (1 - m) * online.

        Args:
            online: the online network, with the same parameter and buffer names and shapes.
            momentum: m for this step (e.g. from :func:`cosine_momentum`); None uses
                ``self.momentum``. Also stored as the new default.
        """
        m = self.momentum if momentum is None else _check_momentum(momentum)
        self.momentum = m
        tgt_params = _matched(self.module.named_parameters(), online.named_parameters(), "parameters")
        tgt_buffers = _matched(self.module.named_buffers(), online.named_buffers(), "buffers")
        if tgt_params:
            targets = [t for t, _ in tgt_params]
            sources = [o.detach().to(dtype=t.dtype) for t, o in tgt_params]
            # mul then add (not lerp): m = 1 keeps the target bit-exact and m = 0 copies exactly.
            torch._foreach_mul_(targets, m)
            torch._foreach_add_(targets, sources, alpha=1.0 - m)
        for t, o in tgt_buffers:
            t.copy_(o)

    def get_extra_state(self) -> torch.Tensor:
        """The momentum, saved in ``state_dict`` so that ``load_state_dict`` restores it too.

        A 0-d float64 tensor rather than a dict: weight files written with safetensors hold
        tensors only.
        """
        return torch.tensor(self.momentum, dtype=torch.float64)

    def set_extra_state(self, state: Any) -> None:
        value = state.item() if isinstance(state, torch.Tensor) else state
        self.momentum = _check_momentum(value, "state_dict momentum")


def _matched(
    target: Any, online: Any, kind: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pair target and online tensors by name; a mismatch means the wrong module was passed."""
    tgt = dict(target)
    src = dict(online)
    if tgt.keys() != src.keys():
        missing = sorted(tgt.keys() - src.keys())[:5]
        extra = sorted(src.keys() - tgt.keys())[:5]
        raise ValueError(
            f"online: expected the same {kind} as the target network; missing {missing}, "
            f"unexpected {extra} (pass the unwrapped module, not a DDP wrapper)"
        )
    pairs = []
    for name, t in tgt.items():
        if t.shape != src[name].shape:
            raise ValueError(
                f"online: {kind[:-1]} {name!r} has shape {tuple(src[name].shape)}, "
                f"expected {tuple(t.shape)} as in the target network"
            )
        pairs.append((t, src[name]))
    return pairs

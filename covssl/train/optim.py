"""Optimizers the papers use (SGD, LARS, AdamW) and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from covssl.config import OptimConfig
from covssl.models import param_groups_for_weight_decay


class LARS(torch.optim.Optimizer):
    """LARS: SGD with momentum whose step is rescaled per layer by a trust ratio.

    [0] You, Gitman, Ginsburg 2017, "Large Batch Training of Convolutional Networks",
        https://arxiv.org/abs/1708.03888

    For a parameter w with gradient g (weight decay folded in, g <- g + wd * w):
        trust = eta * ||w|| / ||g||   (1 if either norm is 0)
        v     <- momentum * v + trust * g
        w     <- w - lr * v
    Groups with ``lars_exclude=True`` (biases, norms) take a plain momentum-SGD step, as in the
    VICReg and Barlow Twins code.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.02,
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta, "lars_exclude": False}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                if not group["lars_exclude"]:
                    g = g.add(w, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(w), torch.linalg.vector_norm(g)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm)
                    )
                    g = g.mul(trust)
                state = self.state[w]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                w.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def scaled_lr(config: OptimConfig, global_batch: int) -> float:
    """The peak learning rate: base lr scaled with the global batch (Goyal et al. 2017 linear rule)."""
    ratio = global_batch / config.lr_reference_batch
    scale = {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[config.lr_scaling]
    return config.lr * scale


def build_optimizer(model: nn.Module, config: OptimConfig, peak_lr: float) -> torch.optim.Optimizer:
    """The configured optimizer; biases and norms skip weight decay (and LARS) when asked."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if config.exclude_bias_and_norm:
        decayed, plain = param_groups_for_weight_decay(model, config.weight_decay)
        groups = [decayed, {**plain, "lars_exclude": True}]
    else:
        groups = [{"params": trainable, "weight_decay": config.weight_decay}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=peak_lr, momentum=config.momentum)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=peak_lr, betas=tuple(config.betas))  # type: ignore[arg-type]
    if config.optimizer == "lars":
        return LARS(groups, lr=peak_lr, momentum=config.momentum, eta=config.lars_eta)
    raise ValueError(f"optim.optimizer: expected sgd, lars or adamw, got {config.optimizer!r}")


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak: float, final_ratio: float = 0.0) -> float:
    """Linear warm-up from ~0 to ``peak`` over ``warmup_steps``, then cosine decay to peak * final_ratio.

    Examples:
        >>> warmup_cosine(0, 100, 10, 1.0)
        0.1
        >>> warmup_cosine(100, 100, 10, 1.0)
        0.0
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    final = peak * final_ratio
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr

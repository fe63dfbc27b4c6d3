"""Optimizer parameter groups: weight decay on weights only, not on norms and biases.

The SSL references (VICReg's and Barlow Twins' LARS, BYOL, timm) exclude biases and
normalization parameters from weight decay (and from LARS adaptation): decaying a BN gamma
towards 0 shrinks a whole channel, and a bias has no scale to regularize. The rule used here:

    no decay  <=>  parameter of a normalization layer, or ndim <= 1 (biases, gains, scalars),
                   or named by the model's ``no_weight_decay()`` (timm's convention)
    decay     <=>  everything else (conv kernels, linear weights)

Frozen parameters (``requires_grad=False``, e.g. an EMA target network) are left out: the
optimizer has nothing to do with them.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from covssl._checks import check_non_negative

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def param_groups_for_weight_decay(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split the trainable parameters into a decayed and a non-decayed group.

    Args:
        model: any module; shared (tied) parameters are listed once.
        weight_decay: decay of the first group, >= 0.

    Returns:
        ``[{"name": "decay", "params": [...], "weight_decay": weight_decay},
        {"name": "no_decay", "params": [...], "weight_decay": 0.0}]``; every trainable
        parameter is in exactly one group (a group may be empty). Optimizers keep the extra
        ``"name"`` key, so a LARS implementation can skip adaptation for "no_decay".

    Examples:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
        >>> groups = param_groups_for_weight_decay(net, 1e-4)
        >>> [len(g["params"]) for g in groups]
        [1, 3]
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    weight_decay = check_non_negative(weight_decay, "weight_decay")
    skip_names = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()

    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for param_name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            if is_norm or p.ndim <= 1 or full_name in skip_names:
                no_decay.append(p)
            else:
                decay.append(p)
    return [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]

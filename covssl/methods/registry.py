"""What a method is (:class:`MethodDef`) and the registry that holds them (:data:`METHODS`).

A method is an objective spec + an augmentation recipe + the model and optimizer settings its
paper uses on CIFAR; every field other than the objective is a *default* of the run
configuration, so a YAML file or a CLI flag can change it. The methods themselves are defined in
:mod:`covssl.methods.catalog`, one entry each; ``covssl methods`` prints them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from covssl.augment import augment_preset
from covssl.config import RunConfig
from covssl.objectives import Objective
from covssl.registry import Registry


@dataclass(frozen=True)
class MethodDef:
    """One method, everything in one place.

    Attributes:
        name: the name of ``method.name`` and ``covssl methods``.
        objective: the spec string (grammar in :mod:`covssl.objectives.spec`).
        description: one line shown by ``covssl methods``.
        paper: the citation, "Authors year, URL".
        views: the augmentation recipe (a name of :func:`covssl.augment.list_augment_presets`).
        model: :class:`~covssl.config.ModelConfig` overrides (CIFAR scale).
        optim: :class:`~covssl.config.OptimConfig` overrides (CIFAR scale).
        crops: :class:`~covssl.augment.AugmentConfig` overrides on top of the recipe (multi-crop:
            ``global_crops``, ``local_crops``, ``local_size``, the ``local`` view's fields).
    """

    name: str
    objective: str
    description: str
    paper: str
    views: str
    model: dict[str, Any] = field(default_factory=dict)
    optim: dict[str, Any] = field(default_factory=dict)
    crops: dict[str, Any] = field(default_factory=dict)


METHODS: Registry[MethodDef] = Registry("method")


def register_method(method: MethodDef) -> MethodDef:
    """Add a method; registering a name twice is an error."""
    return METHODS.register(method.name, method)


def get_method(name: str) -> MethodDef:
    """Look a method up by name, listing the choices when it is unknown."""
    if name not in METHODS:
        raise ValueError(f"method.name: unknown method {name!r}; choose one of: {', '.join(list_methods())}")
    return METHODS[name]


def list_methods() -> list[str]:
    """Registered method names, sorted."""
    return METHODS.names()


def method_defaults(name: str, dataset: str = "cifar10") -> dict[str, Any]:
    """The configuration layer a method contributes (model, optimizer, augmentation, objective)."""
    method = get_method(name)
    augment = asdict(augment_preset(method.views, dataset=dataset))
    for key, value in method.crops.items():
        if isinstance(value, dict):
            augment[key] = {**augment[key], **value}
        else:
            augment[key] = value
    return {
        "method": {"objective": None},
        "model": dict(method.model),
        "optim": dict(method.optim),
        "augment": augment,
    }


def objective_spec(config: RunConfig) -> str:
    """The objective spec a run trains with: ``method.objective``, or the method's own."""
    return config.method.objective or get_method(config.method.name).objective


def preset(name: str, dim: int | None = None) -> Objective:
    """The objective of a method, by name.

    ``dim`` (the embedding dimension) is needed by objectives with running statistics
    (corinfomax).

    Examples:
        >>> preset("vicreg").spec
        'mse:25 + variance_hinge:25 + covariance_penalty:1'
        >>> preset("byol").needs_predictions
        True
    """
    return Objective.from_spec(get_method(name).objective, dim=dim)

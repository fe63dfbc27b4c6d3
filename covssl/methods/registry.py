"""Named methods: each one registry entry that says how to build the model around an objective.

A method is backbone + projector (+ predictor, + EMA target) + an objective spec; every field
other than the objective is a *default* of the run configuration, so a YAML file or a CLI flag
can change it. ``covssl methods`` prints this table.
"""

from __future__ import annotations

from covssl.registry import Registry

from dataclasses import asdict, dataclass, field
from typing import Any

from covssl.augment import augment_preset
from covssl.objectives.presets import PRESETS


@dataclass(frozen=True)
class MethodDef:
    """A method: its objective and the configuration defaults its paper uses on CIFAR."""

    name: str
    objective: str  # spec string
    description: str
    paper: str
    augment: str  # augmentation preset name
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides
    optim: dict[str, Any] = field(default_factory=dict)  # OptimConfig overrides


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
    augment = asdict(augment_preset(method.augment, dataset=dataset))
    return {
        "method": {"objective": None},
        "model": dict(method.model),
        "optim": dict(method.optim),
        "augment": augment,
    }


def _preset(name: str) -> tuple[str, str, str]:
    p = PRESETS[name]
    return p.spec, p.description, p.paper


# CIFAR settings follow solo-learn's and the papers' CIFAR recipes: a 2048-wide projector for the
# covariance methods, SGD/LARS with the learning rates the papers report for batch 256.
_COV_PROJECTOR = {"projector_hidden": [2048, 2048], "projector_out": 2048, "projector_last_bn": False}
_LARS = {"optimizer": "lars", "lr": 0.3, "weight_decay": 1e-4, "warmup_epochs": 10.0}

for _method in (
    MethodDef("vicreg", *_preset("vicreg"), augment="vicreg", model=_COV_PROJECTOR, optim=_LARS),
    MethodDef("barlow_twins", *_preset("barlow_twins"), augment="barlow_twins", model=_COV_PROJECTOR, optim=_LARS),
    MethodDef(
        "coding_rate",
        *_preset("coding_rate"),
        augment="coding_rate",
        model={"projector_hidden": [2048], "projector_out": 128, "projector_last_bn": False},
        optim=_LARS,
    ),
    MethodDef(
        "simclr",
        *_preset("simclr"),
        augment="simclr",
        model={"projector_hidden": [2048], "projector_out": 128, "projector_last_bn": False},
        optim={"optimizer": "lars", "lr": 0.4, "weight_decay": 1e-5, "warmup_epochs": 10.0},
    ),
    MethodDef(
        "simsiam",
        *_preset("simsiam"),
        augment="simsiam",
        model={"projector_hidden": [2048], "projector_out": 2048, "projector_last_bn": True, "predictor_hidden": 512},
        optim={"optimizer": "sgd", "lr": 0.03, "weight_decay": 5e-4, "warmup_epochs": 0.0},
    ),
    MethodDef(
        "corinfomax",
        *_preset("corinfomax"),
        augment="corinfomax",
        model={"projector_hidden": [2048, 2048], "projector_out": 64, "projector_last_bn": False},
        optim={"optimizer": "sgd", "lr": 0.5, "weight_decay": 1e-4, "warmup_epochs": 10.0},
    ),
    MethodDef(
        "byol",
        "negative_cosine:1",
        "online predictor chases an EMA target network (no negatives, no covariance term)",
        "Grill et al. 2020, https://arxiv.org/abs/2006.07733",
        augment="byol",
        model={
            "projector_hidden": [4096],
            "projector_out": 256,
            "projector_last_bn": False,
            "predictor_hidden": 4096,
            "ema_momentum": 0.99,
        },
        optim={"optimizer": "lars", "lr": 1.0, "weight_decay": 1e-5, "warmup_epochs": 10.0},
    ),
):
    register_method(_method)

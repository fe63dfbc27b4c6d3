"""covssl: covariance-regularized self-supervised learning.

Every negative-free SSL method is "align the two views" plus "keep the embedding covariance
full-rank and isotropic":

    L = L_align(z1, z2) + sum_k lambda_k * Omega_k(Sigma)

The math layer (:mod:`covssl.objectives`, :mod:`covssl.linalg`, :mod:`covssl.diagnostics`)
imports only torch; training, evaluation and the CLI are built on top of it.

What a user composes is importable from the top (loaded on first use, so ``import covssl`` stays
cheap)::

    import covssl
    objective = covssl.Objective.from_spec("mse:25 + variance_hinge:25 + covariance_penalty:1")
    objective = covssl.preset("barlow_twins")           # any method `covssl methods` lists
    monitor = covssl.diagnostics.Monitor(every=100)      # collapse and quality metrics, any loop
    augment = covssl.TwoViewAugment(covssl.AugmentConfig(image_size=32))
    head = covssl.Projector(512, [2048], 256)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "Objective": "covssl.objectives",
    "ObjectiveOutput": "covssl.objectives",
    "preset": "covssl.methods",
    "list_methods": "covssl.methods",
    "Monitor": "covssl.diagnostics",
    "collapse_report": "covssl.diagnostics",
    "TwoViewAugment": "covssl.augment",
    "EvalTransform": "covssl.augment",
    "AugmentConfig": "covssl.augment",
    "ViewConfig": "covssl.augment",
    "Projector": "covssl.models",
    "Predictor": "covssl.models",
    "EMATarget": "covssl.models",
    "create_backbone": "covssl.models",
}
_SUBMODULES = ("objectives", "diagnostics", "linalg", "distributed", "augment", "models", "methods", "evaluate")
__all__ = ["__version__", *_EXPORTS, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"covssl.{name}")
    raise AttributeError(f"module 'covssl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

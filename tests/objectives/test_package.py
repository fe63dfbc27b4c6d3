"""The objectives package: its names resolve to what they say; its shared input checks."""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil

import pytest
import torch

import covssl.objectives as objectives
from covssl._checks import NonFiniteError, check_embeddings, finite_values_checked


def test_no_reexported_function_hides_a_module_of_the_package() -> None:
    # `import covssl.objectives.X as m` reads the package attribute X: a function re-exported under
    # its module's name would be returned instead of the module (and monkeypatching "X.f" breaks).
    for info in pkgutil.iter_modules(objectives.__path__):
        importlib.import_module(f"covssl.objectives.{info.name}")
        assert inspect.ismodule(getattr(objectives, info.name)), info.name


def test_every_exported_name_exists() -> None:
    assert all(hasattr(objectives, name) for name in objectives.__all__)


def test_finite_checks_are_skipped_only_inside_the_block() -> None:
    z = torch.tensor([[0.0, math.nan], [1.0, 2.0]])
    with finite_values_checked():
        check_embeddings(z)  # the caller vouched for the values; shapes are still checked
        with pytest.raises(ValueError, match="at least 2 rows"):
            check_embeddings(z[:1])
    with pytest.raises(NonFiniteError, match="1 NaN/inf entries"):
        check_embeddings(z)

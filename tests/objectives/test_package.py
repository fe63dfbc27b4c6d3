"""The objectives package: its names resolve to what they say."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import covssl.objectives as objectives


def test_no_reexported_function_hides_a_module_of_the_package() -> None:
    # `import covssl.objectives.X as m` reads the package attribute X: a function re-exported under
    # its module's name would be returned instead of the module (and monkeypatching "X.f" breaks).
    for info in pkgutil.iter_modules(objectives.__path__):
        importlib.import_module(f"covssl.objectives.{info.name}")
        assert inspect.ismodule(getattr(objectives, info.name)), info.name


def test_every_exported_name_exists() -> None:
    assert all(hasattr(objectives, name) for name in objectives.__all__)

"""The experiments' docstring examples run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["taylor", "isotropy", "embeddings", "registry"])
def test_examples_run(name: str) -> None:
    module = importlib.import_module(f"covssl.experiments.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

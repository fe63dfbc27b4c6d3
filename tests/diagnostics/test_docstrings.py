"""The diagnostics' docstrings: runnable examples and the documented structure."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

from covssl import diagnostics

MODULES = ["decomposition", "hypersphere", "report", "lidar", "monitor", "quality", "slq", "spectrum", "taylor"]
# the diagnostics proper (not the helpers json_safe, logdet_slq*) state healthy/collapsed values
DIAGNOSTICS = {
    "spectrum", "effective_rank", "isotropy", "std_of_normalized", "center_residual",
    "gradient_split", "alignment", "uniformity", "taylor_gap", "coding_rate_terms",
    "rankme", "alpha_req", "nesum", "stable_rank", "lidar", "w2_uniformity",
}  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name: str) -> None:
    module = importlib.import_module(f"covssl.diagnostics.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", diagnostics.__all__)
def test_docstring_sections(name: str) -> None:
    fn = getattr(diagnostics, name)
    doc = inspect.getdoc(fn) or ""
    for section in ("Examples:",) if inspect.isclass(fn) else ("Returns:", "Examples:"):
        assert section in doc, f"{name}: missing {section}"
    if inspect.signature(fn).parameters:
        assert "Args:" in doc
    module_doc = inspect.getmodule(fn).__doc__ or ""
    assert "[0]" in module_doc and "https://" in module_doc, f"{name}: no citation with a link"
    if name in DIAGNOSTICS:
        assert "Healthy" in doc and "ollapsed" in doc, f"{name}: no healthy/collapsed values"

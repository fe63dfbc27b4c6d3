"""Shared helpers for the experiment tests: run an experiment once in quick mode, check PNGs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from covssl.experiments import ExperimentOptions, run_experiment

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path: Path) -> None:
    """The file starts with the PNG signature and decodes to a non-trivial image."""
    assert path.is_file(), f"missing figure {path}"
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] > 200 and image.size[1] > 200


def run_quick(name: str, out: Path) -> dict[str, Any]:
    """Run ``name`` in quick mode into ``out``; return summary.json after checking the files."""
    summary = run_experiment(name, ExperimentOptions(out=out, quick=True))
    data = json.loads((out / "summary.json").read_text())
    assert data["name"] == name and data["passed"] == summary.passed
    markdown = (out / "summary.md").read_text()
    assert "## Claims" in markdown
    for figure in summary.figures:
        assert_valid_png(out / figure)
        assert f"]({figure})" in markdown
    return data

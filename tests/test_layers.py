"""The package's layers: no module imports a layer above its own (late imports inside functions included).

    math (linalg, objectives, diagnostics, ...) <- data, augment, models, evaluate, plots <- config
    <- methods <- resolve <- train, export <- experiments <- cli, analysis_cli, compare_cli, config_cli

and the size of what a reader holds at once: modules of at most 300 lines, training functions of at most 80.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "covssl"

LAYERS: dict[str, int] = {
    **dict.fromkeys(["_checks", "linalg", "distributed", "registry", "objectives", "diagnostics"], 0),
    **dict.fromkeys(["data", "augment", "models", "evaluate", "plots"], 1),
    "config": 2,
    "methods": 3,
    "resolve": 4,
    **dict.fromkeys(["train", "export"], 5),
    "experiments": 6,
    **dict.fromkeys(["cli", "analysis_cli", "compare_cli", "config_cli", "lightning_callback", "__main__", "__init__"], 7),
}


def _top_module(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level covssl module) of every import of the package in a module, wherever it stands."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "covssl":
                if len(parts) > 1:
                    found.append((node.lineno, parts[1]))
                else:  # from covssl import distributed
                    found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "covssl" and len(parts) > 1:
                    found.append((node.lineno, parts[1]))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_module_has_a_layer() -> None:
    tops = {_top_module(path) for path in MODULES} - {"configs"}
    assert tops <= set(LAYERS), f"modules without a layer: {sorted(tops - set(LAYERS))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    own = _top_module(path)
    level = LAYERS[own]
    above = [
        f"line {line}: {own} (layer {level}) imports {target} (layer {LAYERS.get(target)})"
        for line, target in _imported(ast.parse(path.read_text(), str(path)))
        if target in LAYERS and LAYERS[target] > level
    ]
    assert not above, "\n".join(above)


def test_the_check_catches_an_upward_import() -> None:
    tree = ast.parse("def f():\n    from covssl.methods import get_method\n")
    assert _imported(tree) == [(2, "methods")]
    assert LAYERS["methods"] > LAYERS["config"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    lines = path.read_text().count("\n")
    assert lines <= 300, f"{path.relative_to(PACKAGE)} has {lines} lines: split it by what its parts do"


@pytest.mark.parametrize("path", sorted((PACKAGE / "train").glob("*.py")), ids=lambda p: p.name)
def test_training_functions_read_in_one_screen(path: Path) -> None:
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80
    ]
    assert not long, long

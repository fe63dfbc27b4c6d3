"""``covssl config`` and ``covssl terms``: the resolved configuration with each key's comment, and the terms.

    covssl config                               # the offline default, resolved
    covssl config -c cifar10/vicreg optim.lr=0.1
    covssl config --list                        # the shipped configs
    covssl terms                                # every objective term: kind, parameters, formula
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

_FIELD_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s?(.*)$")
_CONTINUATION = re.compile(r"^\s+#\s?(.*)$")


def field_comments(cls: type) -> dict[str, str]:
    """The comment written after each field of a dataclass in its source (continuation lines joined).

    Examples:
        >>> from covssl.config import TrainConfig
        >>> field_comments(TrainConfig)["batch_size"]
        'global batch (split across ranks under torch.distributed)'
    """
    comments: dict[str, str] = {}
    last: str | None = None
    for line in inspect.getsource(cls).splitlines():
        if match := _FIELD_COMMENT.match(line):
            last = match.group(1)
            comments[last] = match.group(2).strip()
        elif last is not None and (match := _CONTINUATION.match(line)):
            comments[last] += " " + match.group(1).strip()
        else:
            last = None
    return comments


def commented_yaml(config: Any) -> str:
    """The configuration as YAML, each key followed by the comment its dataclass gives it."""
    from covssl.config import to_yaml

    lines = []
    stack: list[tuple[int, Any]] = [(-1, config)]  # (indent, the dataclass instance at that depth)
    for line in to_yaml(config).splitlines():
        match = re.match(r"^(\s*)(\w+):(.*)$", line)
        if not match:
            lines.append(line)
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        owner = stack[-1][1] if stack else None
        value = getattr(owner, key, None) if dataclasses.is_dataclass(owner) else None
        comment = field_comments(type(owner)).get(key, "") if dataclasses.is_dataclass(owner) else ""
        choices = _choices(owner, key)
        if choices:
            comment = f"{' | '.join(choices)}: {comment}" if comment else " | ".join(choices)
        lines.append(f"{line}  # {comment}" if comment and not dataclasses.is_dataclass(value) else line)
        if dataclasses.is_dataclass(value):
            stack.append((indent, value))
    return "\n".join(lines) + "\n"


def _choices(owner: Any, key: str) -> tuple[str, ...]:
    """The values a key declared with :func:`covssl.config.choice` accepts (empty for other keys)."""
    if not dataclasses.is_dataclass(owner):
        return ()
    declared = {f.name: f for f in dataclasses.fields(owner)}.get(key)
    return tuple(declared.metadata.get("choices", ())) if declared is not None else ()


def register(app: typer.Typer, fail: Callable[[Exception], None]) -> None:
    """Add ``config`` and ``terms`` to the covssl command line."""

    @app.command("config")
    def show_config(
        overrides: Optional[List[str]] = typer.Argument(None, help="section.key=value overrides, e.g. optim.lr=0.1"),
        config: str = typer.Option("digits/demo", "--config", "-c", help="YAML file or shipped config"),
        list_configs: bool = typer.Option(False, "--list", help="list the shipped configs and stop"),
    ) -> None:
        """Print the resolved configuration as YAML, each key with its meaning (what `covssl train` would run)."""
        from covssl.config import shipped_configs
        from covssl.resolve import load_config

        if list_configs:
            table = Table(title="shipped configs (covssl train -c NAME)")
            table.add_column("name")
            table.add_column("first line of its header", overflow="fold")
            for name, path in shipped_configs().items():
                header = next((l.lstrip("# ").strip() for l in path.read_text().splitlines() if l.startswith("#")), "")
                table.add_row(name, header)
            Console().print(table)  # created now: the terminal's width at the time of the call
            return
        try:
            resolved = load_config(config, list(overrides or []))
        except (ValueError, FileNotFoundError) as error:
            fail(error)
            return
        typer.echo(commented_yaml(resolved), nl=False)

    @app.command("terms")
    def terms(pattern: Optional[str] = typer.Argument(None, help="shell-style filter, e.g. 'cov*'")) -> None:
        """List every objective term a spec can name: its kind, parameters with defaults, and formula."""
        import fnmatch

        from covssl.objectives import get_term
        from covssl.objectives.terms import TERMS

        table = Table(title="objective terms (method.objective='name(param=value):weight + ...')")
        for column in ("term", "kind", "parameters", "formula"):
            table.add_column(column, overflow="fold")
        for name in sorted(TERMS):
            if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
                continue
            term = get_term(name)
            params = ", ".join(f"{k}={v}" for k, v in term.defaults().items())
            kind = term.kind + (" (maximized)" if term.sign < 0 else "")
            table.add_row(name, kind, params or "-", term.formula)
        Console().print(table)  # created now: the terminal's width at the time of the call

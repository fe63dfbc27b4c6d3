"""One registry type for everything covssl looks up by name: terms, methods, experiments, backbones,
datasets, augmentation presets.

A registry is a mapping from name to entry, filled by explicit ``register`` calls (never a star
import). Registering a name twice is an error, an unknown name lists the choices, and names can
be listed by a shell-style pattern.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    """Entries by name.

    Args:
        kind: what the entries are ("backbone", "method", ...), used in error messages.

    Examples:
        >>> shapes = Registry[int]("shape")
        >>> shapes.register("square", 4)
        4
        >>> shapes.register("triangle", 3)
        3
        >>> shapes.names("s*"), shapes.lookup("triangle")
        (['square'], 3)
        >>> shapes.register("square", 5)
        Traceback (most recent call last):
        ...
        ValueError: shape 'square' is already registered
        >>> shapes.lookup("circle")
        Traceback (most recent call last):
        ...
        ValueError: unknown shape 'circle'; choose one of: square, triangle
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` and return it; a name already registered is an error."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string for a {self.kind}, got {name!r}")
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated factory and returns it unchanged."""
        return lambda entry: self.register(name, entry)

    def lookup(self, name: str) -> T:
        """The entry of ``name``; an unknown name is an error that lists the choices."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self[name]

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally only those matching a shell-style ``pattern`` (e.g. ``"resnet*"``)."""
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"pattern: expected a string or None, got {type(pattern).__name__}")
        return sorted(n for n in self if pattern is None or fnmatch.fnmatchcase(n, pattern))

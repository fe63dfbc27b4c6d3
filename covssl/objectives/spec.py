"""The objective spec grammar: a readable, round-trippable string for a composed objective.

    spec    := term ( "+" term )* ( ";" option )*
    term    := name [ "[" views "]" ] [ "(" param ( "," param )* ")" ] [ ":" weight ]
    param   := key "=" value              value: a number, true or false
    option  := "normalize"                l2-normalize embeddings before every term

``views`` says which views a term sees when there are more than two (multi-crop); without it a
term takes its kind's default, and with two views every choice below but ``to_global`` means
what a two-view spec means:

    alignment   pairs (default: every pair of views), to_global (each view to each other global
                view, DINO), to_global_mean (each view to the mean of the global views, LeJEPA)
    regularizer all (default: each view, averaged or summed), global (the global views only)
    pair term   pairs (default: every pair of views), global (pairs of global views)
    set term    all (default: every view at once), global

Examples:
    "mse:25 + variance_hinge:25 + covariance_penalty:1"             (VICReg)
    "cosine:1 + coding_rate(eps=0.5):0.5; normalize"                 (SimDINO-style)
    "info_nce(temperature=0.2)"                                      (SimCLR, weight 1)
    "mse[to_global_mean]:1 + coding_rate[global](eps=0.5):0.5"       (multi-crop)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_TERM = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*(?P<views>[A-Za-z_]+)\s*\])?\s*"
    r"(?:\((?P<params>[^()]*)\))?\s*(?::\s*(?P<weight>[^:]+?))?\s*$"
)
VIEWS = ("pairs", "to_global", "to_global_mean", "all", "global")
OPTIONS = ("normalize",)


@dataclass(frozen=True)
class TermSpec:
    """One parsed term: its registry name, its weight and its non-default parameters."""

    name: str
    weight: float = 1.0
    params: tuple[tuple[str, float | bool], ...] = ()
    views: str | None = None  # which views the term sees (None: its kind's default)

    def __str__(self) -> str:
        text = self.name if self.views is None else f"{self.name}[{self.views}]"
        if self.params:
            text += "(" + ", ".join(f"{k}={format_value(v)}" for k, v in self.params) + ")"
        return f"{text}:{format_value(self.weight)}"


@dataclass(frozen=True)
class ObjectiveSpec:
    """A parsed spec: terms in order plus options. ``str(spec)`` is the canonical form."""

    terms: tuple[TermSpec, ...]
    options: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        text = " + ".join(str(t) for t in self.terms)
        return "; ".join([text, *self.options])


def format_value(value: float | bool) -> str:
    """Shortest text that parses back to exactly ``value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def parse_value(text: str, where: str) -> float | bool:
    """Parse a parameter value: true/false or a finite number."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number or true/false, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {text!r}")
    return value


def parse_weight(text: str | None, term: str) -> float:
    """Parse a term weight: a finite number > 0 (default 1)."""
    if text is None:
        return 1.0
    try:
        weight = float(text)
    except ValueError:
        raise ValueError(f"weight of {term!r}: expected a number > 0, got {text.strip()!r}") from None
    if not math.isfinite(weight) or weight <= 0:
        raise ValueError(f"weight of {term!r}: expected a finite number > 0, got {text.strip()!r}")
    return weight


def parse_spec(text: str) -> ObjectiveSpec:
    """Parse a spec string into terms and options (names are checked later, against the registry)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"objective spec: expected a non-empty string like 'mse:25 + variance_hinge:25', got {text!r}")
    body, *raw_options = text.split(";")
    options = []
    for option in raw_options:
        option = option.strip()
        if option not in OPTIONS:
            raise ValueError(f"objective spec option: expected one of {OPTIONS}, got {option!r}")
        if option not in options:
            options.append(option)
    terms = []
    # split on "+" between terms, not inside an exponent such as 1e+3
    for chunk in re.split(r"(?<![0-9][eE])\+", body):
        match = _TERM.match(chunk)
        if match is None:
            raise ValueError(
                "objective spec term: expected 'name', 'name:weight' or 'name[views](key=value):weight', "
                f"got {chunk.strip()!r}"
            )
        name = match["name"]
        params = []
        if match["params"] is not None and match["params"].strip():
            for item in match["params"].split(","):
                key, sep, value = item.partition("=")
                if not sep or not key.strip():
                    raise ValueError(f"parameter of {name!r}: expected key=value, got {item.strip()!r}")
                params.append((key.strip(), parse_value(value, f"parameter {key.strip()!r} of {name!r}")))
        views = match["views"]
        if views is not None and views not in VIEWS:
            raise ValueError(f"views of {name!r}: expected one of {VIEWS}, got {views!r}")
        terms.append(TermSpec(name, parse_weight(match["weight"], name), tuple(sorted(params)), views))
    names = [t.name for t in terms]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"objective spec: each term may appear once, got {duplicated} more than once")
    return ObjectiveSpec(tuple(terms), tuple(options))

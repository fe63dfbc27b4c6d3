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
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Matched with fullmatch() against a stripped term, so no whitespace at either end. Linear time:
# each optional part starts with its own "\s*" followed by a literal ("[", "(", ":"), so no two
# quantifiers can share a run of characters and a failed match backtracks each run once.
# (A "\s*" on both sides of an optional part made hostile input like "mse" + " " * n + "x"
# take time polynomial in n, ~n^4.)
_TERM = re.compile(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\s*\[\s*(?P<views>[A-Za-z_]+)\s*\])?"
    r"(?:\s*\((?P<params>[^()]*)\))?"
    r"(?:\s*:(?P<weight>[^:]*))?"
)
# "+" between terms, not inside an exponent such as 1e+3
_TERM_SEPARATOR = re.compile(r"(?<![0-9][eE])\+")
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


def shown(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters: error messages stay short for any input."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[: limit - 20] + '...' + text[-10:]!r} ({len(text)} characters)"


def duplicated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted (linear time, unlike list.count in a loop)."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


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
        raise ValueError(f"{where}: expected a number or true/false, got {shown(text)}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {shown(text)}")
    return value


def parse_weight(text: str | None, term: str) -> float:
    """Parse a term weight: a finite number > 0 (default 1)."""
    if text is None:
        return 1.0
    text = text.strip()
    try:
        weight = float(text)
    except ValueError:
        raise ValueError(f"weight of {shown(term)}: expected a number > 0, got {shown(text)}") from None
    if not math.isfinite(weight) or weight <= 0:
        raise ValueError(f"weight of {shown(term)}: expected a finite number > 0, got {shown(text)}")
    return weight


def parse_params(text: str | None, term: str) -> tuple[tuple[str, float | bool], ...]:
    """Parse ``key=value, ...`` (the text between a term's parentheses), sorted by key.

    Each key is a name and appears once; each value is a number or true/false.
    """
    if text is None or not text.strip():
        return ()
    params = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or _NAME.fullmatch(key) is None:
            got = shown(item.strip())
            raise ValueError(f"parameter of {shown(term)}: expected key=value with a name as key, got {got}")
        params.append((key, parse_value(value, f"parameter {shown(key)} of {shown(term)}")))
    twice = duplicated(key for key, _ in params)
    if twice:
        raise ValueError(f"parameter {shown(twice[0])} of {shown(term)}: expected once, given more than once")
    return tuple(sorted(params))


def parse_term(text: str) -> TermSpec:
    """Parse one term: ``name[views](key=value, ...):weight``, every part but the name optional."""
    match = _TERM.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            "objective spec term: expected 'name', 'name:weight' or 'name[views](key=value):weight', "
            f"got {shown(text.strip())}"
        )
    name, views = match["name"], match["views"]
    if views is not None and views not in VIEWS:
        raise ValueError(f"views of {shown(name)}: expected one of {VIEWS}, got {shown(views)}")
    return TermSpec(name, parse_weight(match["weight"], name), parse_params(match["params"], name), views)


def parse_spec(text: str) -> ObjectiveSpec:
    """Parse a spec string into terms and options (names are checked later, against the registry).

    Runs in time linear in ``len(text)``, whatever the text; every malformed spec is a ValueError.
    """
    if not isinstance(text, str) or not text.strip():
        got = shown(text) if isinstance(text, str) else repr(text)
        raise ValueError(f"objective spec: expected a non-empty string like 'mse:25 + variance_hinge:25', got {got}")
    body, *raw_options = text.split(";")
    options: list[str] = []
    for option in raw_options:
        option = option.strip()
        if option not in OPTIONS:
            raise ValueError(f"objective spec option: expected one of {OPTIONS}, got {shown(option)}")
        if option not in options:
            options.append(option)
    terms: dict[str, TermSpec] = {}
    for chunk in _TERM_SEPARATOR.split(body):
        term = parse_term(chunk)
        if term.name in terms:  # stop at the first repeat: "mse + mse + ..." fails at once
            raise ValueError(f"objective spec: each term may appear once, got {shown(term.name)} more than once")
        terms[term.name] = term
    return ObjectiveSpec(tuple(terms.values()), tuple(options))

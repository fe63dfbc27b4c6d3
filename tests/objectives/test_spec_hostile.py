"""Hostile spec strings (covssl/objectives/spec.py) and parameter values checked when a spec is read.

Every malformed spec is a ValueError with a short message, found in time linear in the length of
the text; every bad parameter value is refused by ``check_spec`` / ``Objective.from_spec`` with
the message the term's own function gives when called with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl._checks import check_positive
from covssl.objectives import TERMS, Objective
from covssl.objectives.objective import check_spec
from covssl.objectives.spec import VIEWS, TermSpec, format_value, parse_spec
from covssl.objectives.terms import TermDef, mse

# ---------------------------------------------------------------- linear time on hostile text

# each makes a hostile spec of about n characters
HOSTILE: dict[str, Callable[[int], str]] = {
    "spaces then junk after a weight": lambda n: "mse:1" + " " * n + "x",
    "spaces then junk after a name": lambda n: "mse" + " " * n + "x",
    "spaces before an unclosed view": lambda n: "mse" + " " * n + "[pairs",
    "spaces in unclosed parameters": lambda n: "coding_rate(" + " " * n + "eps=1",
    "spaces around many colons": lambda n: "mse" + " : " * (n // 3),
    "many plus signs": lambda n: "+" * n,
    "one term many times": lambda n: "mse+" * (n // 4),
    "many distinct unknown terms": lambda n: "+".join(f"t{i}" for i in range(n // 7)),
    "exponent-like plus signs": lambda n: "1e+" * (n // 3),
    "open parentheses": lambda n: "mse" + "(" * n,
    "close parentheses": lambda n: "mse" + ")" * n,
    "nested parentheses": lambda n: "mse" + "(" * (n // 2) + ")" * (n // 2),
    "many brackets": lambda n: "mse" + "[" * n,
    "many commas": lambda n: "coding_rate(" + "," * n + ")",
    "many equals signs": lambda n: "coding_rate(eps" + "=" * n + "1)",
    "many parameters": lambda n: "coding_rate(" + ",".join(f"p{i}=1" for i in range(n // 9)) + ")",
    "many semicolons": lambda n: "mse" + ";" * n,
    "long weight": lambda n: "mse:" + "1" * n,
    "long parameter value": lambda n: "coding_rate(eps=" + "9" * n + ")",
    "long name": lambda n: "a" * n,
    "long views": lambda n: "mse[" + "p" * n + "]",
    "NUL bytes": lambda n: "mse" + "\x00" * n,
    "newlines": lambda n: "mse:1" + "\n" * n + "x",
    "unicode spaces and letters": lambda n: "mse:1" + "\u2003" * n + "\u00e9",
}


def _seconds_to_fail(text: str, repeats: int = 3) -> float:
    """Best of ``repeats``: how long ``check_spec`` takes to refuse ``text`` (it must refuse it)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        with pytest.raises(ValueError) as error:
            check_spec(text)
        best = min(best, time.perf_counter() - start)
        # short, whatever the text: at most the list of term names besides a cut-down quote
        assert len(str(error.value)) < 300 + len(", ".join(TERMS)), "the message quotes the whole text"
    return best


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_a_hostile_spec_fails_in_linear_time(shape: str) -> None:
    small = _seconds_to_fail(HOSTILE[shape](100_000))
    large = _seconds_to_fail(HOSTILE[shape](1_000_000))
    assert large < 2.0, f"{shape}: {large:.2f} s to refuse 1M characters"
    # 10x the text: ~10x the time when linear, 100x when quadratic (slack for timer noise)
    assert large < 30 * small + 0.05, f"{shape}: {small:.4f} s at 100k characters, {large:.4f} s at 1M"


def test_the_quadratic_shape_of_before_is_fast() -> None:
    # this took > 15 s (and "mse" + " " * 400 + "x" took 6 s) when the term regex backtracked
    start = time.perf_counter()
    with pytest.raises(ValueError, match="weight of 'mse': expected a number > 0"):
        parse_spec("mse:1" + " " * 100_000 + "x")
    assert time.perf_counter() - start < 0.5


def test_a_long_input_is_cut_short_in_the_message() -> None:
    with pytest.raises(ValueError, match=r"expected 'name'.*'aaaa.*\.\.\.a+\(x' \(1000002 characters\)") as error:
        parse_spec("a" * 1_000_000 + "(x")
    assert len(str(error.value)) < 250


@pytest.mark.parametrize(
    "text, message",
    [
        ("mse\x00:1", "expected 'name'"),
        ("m\u00e9e", "expected 'name'"),
        ("mse:1\n+\ncoding_rate(eps=\n2)", None),  # newlines are white space
        ("mse :\u20032", None),  # so are unicode spaces
        ("coding_rate((eps=1))", "expected 'name'"),
        ("coding_rate(eps=1))", "expected 'name'"),
        ("coding_rate(e ps=1)", "expected key=value with a name as key"),
        ("coding_rate(=1)", "expected key=value with a name as key"),
        ("coding_rate(eps)", "expected key=value"),
        ("mse[pairs][pairs]", "expected 'name'"),
        ("mse[sideways]", "views of 'mse'"),
        ("mse:1e+3 + coding_rate:2E+1", None),  # "+" of an exponent does not split terms
        ("+", "expected 'name'"),
        ("mse +", "expected 'name'"),
        ("mse:", "weight of 'mse'"),
    ],
)
def test_odd_specs(text: str, message: str | None) -> None:
    if message is None:
        assert parse_spec(str(parse_spec(text))) == parse_spec(text)
    else:
        with pytest.raises(ValueError, match=message):
            parse_spec(text)


# ---------------------------------------------------------------- a parameter given twice


def test_a_parameter_given_twice_is_named() -> None:
    with pytest.raises(ValueError, match="parameter 'eps' of 'coding_rate': expected once, given more than once"):
        parse_spec("coding_rate(eps=0.5, eps=0.7)")
    with pytest.raises(ValueError, match="parameter 'eps' of 'coding_rate'"):
        Objective.from_spec("coding_rate(eps=0.5,eps=0.5)")  # even with one value


def test_a_term_spec_built_in_code_with_a_parameter_twice_is_refused() -> None:
    term = TermSpec("coding_rate", params=(("eps", 0.5), ("eps", 0.7)))
    with pytest.raises(ValueError, match="parameter 'eps' of term 'coding_rate': expected once"):
        Objective([term])


# ---------------------------------------------------------------- parameter values, for every term

# values tried on every checked parameter; those a parameter's check refuses must be refused by a spec
CANDIDATES = (-1.0, -0.5, 0.0, 1.0, 1.5, 2.0)
# parameters whose check at call time also needs the views (their number, the batch size): the
# spec is checked against the part of the rule that holds on its own, with its own message
NEEDS_THE_VIEWS = {("lejepa", "num_global"), ("simdino", "num_global"), ("wmse", "w_size")}


def _as_given(definition: TermDef, key: str, value: float) -> object:
    """The value as the term receives it from a spec: integer parameters as int."""
    return int(value) if key in definition.integer_params() else value


def _refused(definition: TermDef, key: str) -> list[tuple[float, str]]:
    """The candidates the declared check of ``key`` refuses, each with the check's message."""
    integers = definition.integer_params()
    refused = []
    for value in CANDIDATES:
        if key in integers and not value.is_integer():
            continue  # "expected an integer": refused before the check, tested elsewhere
        try:
            definition.checks[key](_as_given(definition, key, value), key)
        except ValueError as error:
            refused.append((value, str(error)))
    return refused


CHECKED = [(name, key) for name, d in sorted(TERMS.items()) for key in sorted(d.checks)]


def test_every_number_parameter_of_every_term_has_a_check() -> None:
    unchecked = [
        (name, key)
        for name, d in sorted(TERMS.items())
        for key, default in d.defaults().items()
        if not isinstance(default, bool) and key not in d.checks
    ]
    assert unchecked == []
    assert len(CHECKED) >= 40  # every term's every number parameter (44 when written)


@pytest.mark.parametrize(("name", "key"), CHECKED)
def test_a_bad_value_is_refused_when_the_spec_is_read(name: str, key: str) -> None:
    definition = TERMS[name]
    refused = _refused(definition, key)
    assert refused, f"{name}.{key}: no candidate in {CANDIDATES} is refused by its check"
    for value, message in refused:
        text = f"{name}({key}={format_value(value)})"
        expected = f"term {name!r}: {message}"
        with pytest.raises(ValueError) as error:
            check_spec(text)
        assert str(error.value) == expected
        with pytest.raises(ValueError) as error:
            Objective.from_spec(text, dim=4)
        assert str(error.value) == expected


def _call(definition: TermDef, params: dict[str, object]) -> object:
    """Call the term's function on valid inputs (16 x 4 views) with ``params``."""
    gen = torch.Generator().manual_seed(0)
    z1, z2 = (torch.randn(16, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    calls: dict[str, Callable[[], object]] = {
        "branch": lambda: definition.fn(z1, **params),
        "pair": lambda: definition.fn(z1, z2, **params),
        "set": lambda: definition.fn([z1, z2], **params),
        "distill": lambda: definition.fn([z1, z2], [z2, z1], **params),
        "stateful": lambda: definition.fn(4, **params),
    }
    return calls[definition.kind]()


@pytest.mark.parametrize(("name", "key"), CHECKED)
def test_the_spec_refuses_what_the_call_refuses_with_its_message(name: str, key: str) -> None:
    definition = TERMS[name]
    for value, message in _refused(definition, key):
        with pytest.raises(ValueError) as error:
            _call(definition, {key: _as_given(definition, key, value)})
        if (name, key) in NEEDS_THE_VIEWS:
            assert str(error.value).startswith(f"{key}: ")
        else:
            assert str(error.value) == message


def test_a_value_the_check_allows_is_accepted() -> None:
    check_spec("coding_rate(eps=1e-3) + info_nce(temperature=0.05) + tico(beta=0):2")
    check_spec("lejepa(lambd=1, num_global=1) + mec(order=1)")


def test_checks_must_name_parameters_of_the_function() -> None:
    message = r"checks of term 'x': expected parameters of its function, got \['temperature'\]"
    with pytest.raises(ValueError, match=message):
        TermDef("x", mse, "align", "mean (z1 - z2)^2", checks={"temperature": check_positive})


# ---------------------------------------------------------------- any text: a spec that round-trips, or ValueError

_GRAMMAR = "abcdeimnorstu_019.eE+-:;,=()[] \t\n\x00\u00e9\u2003"
_keys = st.sampled_from(sorted({k for d in TERMS.values() for k in d.defaults()})) | st.text(_GRAMMAR, max_size=6)
_values = (
    st.floats().map(repr)
    | st.integers(-3, 5000).map(str)
    | st.sampled_from(["true", "FALSE", "1e+3", "-0", "1_0", "", "x", "1e999", "nan"])
    | st.text(_GRAMMAR, max_size=6)
)
_blank = st.text(" \t\n\u2003", max_size=2)


@st.composite
def _terms(draw: st.DrawFn) -> str:
    """Text shaped like a term, often valid: name, [views], (params), :weight, each maybe present."""
    text = draw(st.sampled_from(sorted(TERMS)) | st.text(_GRAMMAR, max_size=8))
    if draw(st.booleans()):
        text += draw(_blank) + "[" + draw(st.sampled_from(VIEWS) | st.text(_GRAMMAR, max_size=5)) + "]"
    if draw(st.booleans()):
        params = draw(st.lists(st.tuples(_keys, _values), max_size=3))
        text += draw(_blank) + "(" + ",".join(f"{k}{draw(_blank)}={v}" for k, v in params) + ")"
    if draw(st.booleans()):
        text += draw(_blank) + ":" + draw(_blank) + draw(_values)
    return draw(_blank) + text + draw(_blank)


_specs = st.one_of(
    st.text(max_size=60),
    st.text(_GRAMMAR, max_size=60),
    st.builds(
        lambda terms, separator, options: separator.join(terms) + "".join(options),
        st.lists(_terms(), min_size=1, max_size=4),
        st.sampled_from(["+", " + ", "++", "\n+\t"]),
        st.lists(st.sampled_from(["; normalize", ";normalize ", "; whiten", ";"]), max_size=2),
    ),
)


@settings(max_examples=400, deadline=None)
@given(_specs)
def test_any_text_parses_to_a_spec_that_round_trips_or_is_a_value_error(text: str) -> None:
    start = time.perf_counter()
    try:
        spec = parse_spec(text)
    except ValueError:
        spec = None
    if spec is not None:
        again = parse_spec(str(spec))
        assert again == spec
        assert str(again) == str(spec)
    try:
        check_spec(text)
    except ValueError:
        pass
    assert time.perf_counter() - start < 0.5

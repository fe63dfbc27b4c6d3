"""Objective composition: spec grammar, round trip, presets equal the papers' losses, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.methods import METHODS, preset
from covssl.objectives import (
    TERMS,
    Objective,
    barlow_twins_loss,
    coding_rate,
    info_nce_loss,
    simsiam_loss,
    vicreg_loss,
)
from covssl.objectives.spec import format_value, parse_spec
from covssl._checks import NonFiniteError


def _pair(batch: int = 16, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g, dtype=torch.float64), torch.randn(batch, dim, generator=g, dtype=torch.float64)


def test_vicreg_spec_equals_official_loss() -> None:
    z1, z2 = _pair()
    objective = Objective.from_spec("mse:25 + variance_hinge:25 + covariance_penalty:1")
    out = objective(z1, z2)
    expected = vicreg_loss(z1, z2)
    torch.testing.assert_close(out.loss, expected["loss"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.terms["covariance_penalty"], expected["covariance"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "name, reference",
    [
        ("vicreg", lambda z1, z2: vicreg_loss(z1, z2)["loss"]),
        ("barlow_twins", lambda z1, z2: barlow_twins_loss(z1, z2)["loss"]),
        ("simclr", lambda z1, z2: info_nce_loss(z1, z2, temperature=0.5)),
        (
            "coding_rate",
            lambda z1, z2: (1 - F.cosine_similarity(z1, z2)).mean()
            - 0.005 * 0.5 * (coding_rate(F.normalize(z1), eps=0.5) + coding_rate(F.normalize(z2), eps=0.5)),
        ),
    ],
)
def test_presets_equal_the_papers_losses(name: str, reference) -> None:
    z1, z2 = _pair(seed=3)
    torch.testing.assert_close(preset(name)(z1, z2).loss, reference(z1, z2), rtol=1e-10, atol=1e-10)


def test_simsiam_preset_uses_predictions_and_stop_gradient() -> None:
    z1, z2 = _pair(seed=4)
    p1, p2 = _pair(seed=5)
    z1.requires_grad_(True)
    p1.requires_grad_(True)
    out = preset("simsiam")(z1, z2, p1, p2)
    torch.testing.assert_close(out.loss, simsiam_loss(p1, p2, z1, z2))
    out.loss.backward()
    assert p1.grad is not None and torch.count_nonzero(p1.grad) > 0
    assert z1.grad is None or torch.count_nonzero(z1.grad) == 0


def test_predictor_term_without_predictions_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="p1, p2"):
        preset("simsiam")(*_pair())


def test_maximized_terms_enter_with_negative_sign() -> None:
    z1, z2 = _pair(seed=6)
    out = Objective.from_spec("coding_rate:2")(z1, z2)
    assert out.terms["coding_rate"] > 0
    torch.testing.assert_close(out.loss, -2 * out.terms["coding_rate"])


def test_normalize_option_l2_normalizes_before_terms() -> None:
    z1, z2 = _pair(seed=7)
    plain = Objective.from_spec("mse:1")(F.normalize(z1), F.normalize(z2)).loss
    normalized = Objective.from_spec("mse:1; normalize")(3 * z1, 5 * z2).loss
    torch.testing.assert_close(plain, normalized)


def test_half_precision_embeddings_are_upcast() -> None:
    z1, z2 = _pair(batch=32, dim=16, seed=8)
    out = preset("vicreg")(z1.bfloat16(), z2.bfloat16())
    assert out.loss.dtype == torch.float32
    expected = vicreg_loss(z1.bfloat16().double(), z2.bfloat16().double())["loss"]
    assert math.isclose(float(out.loss), float(expected), rel_tol=1e-4)


_PAIR_TERMS = sorted(name for name, t in TERMS.items() if t.kind not in ("predict", "distill"))
# a stop-gradient inside (TiCo's running covariance, VISReg's scale in the shape term) makes the
# analytic gradient differ from finite differences by design; their modules test it exactly
_STOP_GRADIENT = {"tico", "visreg"}


@pytest.mark.parametrize("name", _PAIR_TERMS)
def test_every_registered_term_is_finite_and_gradchecks(name: str) -> None:
    z1, z2 = _pair(batch=6, dim=4, seed=9)
    objective = Objective.from_spec(name, dim=4).eval()  # eval: stateful terms do not update
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    loss = objective(z1, z2).loss
    assert torch.isfinite(loss)
    if name in _STOP_GRADIENT:
        gradients = torch.autograd.grad(loss, (z1, z2))
        assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in gradients)
    else:
        assert torch.autograd.gradcheck(lambda a, b: objective(a, b).loss, (z1, z2))


_names = st.sampled_from(sorted(n for n, t in TERMS.items() if t.kind == "branch" or t.kind == "pair"))
_weights = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(_names, _weights), min_size=1, max_size=4, unique_by=lambda t: t[0]), st.booleans())
def test_spec_round_trips(terms: list[tuple[str, float]], normalize: bool) -> None:
    text = " + ".join(f"{n}:{format_value(w)}" for n, w in terms) + ("; normalize" if normalize else "")
    objective = Objective.from_spec(text)
    again = Objective.from_spec(objective.spec)
    assert again.spec == objective.spec
    assert again.term_specs == objective.term_specs
    assert again.normalize == normalize
    assert [t.weight for t in again.term_specs] == [w for _, w in terms]


def test_spec_with_params_round_trips() -> None:
    text = "cosine:1 + coding_rate(eps=0.25):0.05 + variance_hinge(gamma=2, squared=true):1e+3; normalize"
    objective = Objective.from_spec(text)
    assert objective.spec == "cosine:1 + coding_rate(eps=0.25):0.05 + variance_hinge(gamma=2, squared=true):1000; normalize"
    assert Objective.from_spec(objective.spec).spec == objective.spec
    assert parse_spec(objective.spec) == parse_spec(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "non-empty"),
        ("msee:1", "unknown objective term 'msee'"),
        ("mse:-1", "weight of 'mse'"),
        ("mse:0", "weight of 'mse'"),
        ("mse:abc", "weight of 'mse'"),
        ("mse:nan", "weight of 'mse'"),
        ("mse:inf", "weight of 'mse'"),
        ("mse + mse", "more than once"),
        ("mse + cosine", "at most one alignment term"),
        ("coding_rate(epsilon=1)", "parameter 'epsilon' of term 'coding_rate'"),
        ("coding_rate(eps=yes)", "parameter 'eps' of 'coding_rate'"),
        ("variance_hinge(squared=1)", "expected true or false"),
        ("mse; whiten", "option"),
        ("mse:1:2", "expected 'name'"),
    ],
)
def test_bad_specs_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Objective.from_spec(text)


def test_bad_embeddings_are_rejected_before_any_term() -> None:
    objective = preset("vicreg")
    with pytest.raises(ValueError, match="z2"):
        objective(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="z1"):
        objective(torch.randn(1, 3), torch.randn(1, 3))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_an_objective_checks_each_input_for_nan_once(name: str, monkeypatch) -> None:
    # reading a finiteness check on the host is a device sync on a GPU: the inputs are checked
    # together, once per call, not again by every term for every view
    objective = preset(name, dim=6)
    batch = 128 if name == "w_mse" else 8  # W-MSE whitens windows of 128 rows
    z1, z2 = torch.randn(batch, 6, dtype=torch.float64), torch.randn(batch, 6, dtype=torch.float64)
    checked, real_isfinite = [], torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: checked.append(t.shape) or real_isfinite(t))
    stacked, real_stack = [], torch.stack

    def stack(ts, *a, **k):  # counts the stacks of finiteness flags (0-d bool tensors) only
        ts = list(ts)
        if all(t.ndim == 0 and t.dtype == torch.bool for t in ts):
            stacked.append(len(ts))
        return real_stack(ts, *a, **k)

    monkeypatch.setattr(torch, "stack", stack)
    if objective.needs_targets:  # SimDINO: the views and an EMA teacher's two global views
        objective.over_views([z1, z2], num_global=2, targets=[z1 + 0.1, z2 - 0.1])
    else:
        objective(z1, z2, z1 + 0.1, z2 - 0.1)
    inputs = 4 if objective.needs_predictions or objective.needs_targets else 2
    # W-MSE reads once more, together, whether each view's Cholesky factorization succeeded
    reads = 2 if name == "w_mse" else 1
    assert len(checked) == inputs * reads and stacked.count(inputs) == reads


@pytest.mark.parametrize("bad", ["z1", "z2", "p1", "p2"])
def test_a_non_finite_input_is_named_after_the_single_check(bad: str) -> None:
    inputs = {name: torch.randn(8, 6, dtype=torch.float64) for name in ("z1", "z2", "p1", "p2")}
    inputs[bad][3, 2] = math.inf
    with pytest.raises(NonFiniteError, match=f"{bad}: expected finite values, got 1 NaN/inf entries"):
        preset("simsiam")(**inputs)


def test_corinfomax_preset_owns_its_running_state() -> None:
    from covssl.objectives.corinfomax import CorInfoMaxRegularizer

    z1, z2 = _pair(batch=32, dim=8, seed=10)
    objective = preset("corinfomax", dim=8)
    reference = CorInfoMaxRegularizer(8)
    n1, n2 = F.normalize(z1), F.normalize(z2)
    for _ in range(2):  # two steps: the running estimates must evolve identically
        expected = 250 * F.mse_loss(n1, n2) + reference(n1, n2)
        torch.testing.assert_close(objective(z1, z2).loss, expected.float() if expected.dtype != torch.float64 else expected)
    assert any(k.startswith("stateful.corinfomax.") for k in objective.state_dict())
    with pytest.raises(ValueError, match="dim"):
        preset("corinfomax")

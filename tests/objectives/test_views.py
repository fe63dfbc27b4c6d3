"""Tests of covssl/objectives/views.py: which views each term sees, written out by hand here."""

from __future__ import annotations

import itertools

import pytest
import torch

from covssl.objectives import Objective, coding_rate, covariance_penalty, info_nce_loss, mmcr_loss, negative_cosine
from covssl.objectives.spec import parse_spec

V, G = 5, 2  # 2 global + 3 local views


def _views(count: int = V, batch: int = 12, dim: int = 6, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    return [base + 0.5 * torch.randn(batch, dim, generator=g, dtype=torch.float64) for _ in range(count)]


def _value(spec: str, views: list[torch.Tensor], predictions=None, num_global: int = G) -> torch.Tensor:
    return Objective.from_spec(spec, dim=views[0].shape[1]).over_views(views, predictions, num_global).loss


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_alignment_choices() -> None:
    z = _views()
    mse = lambda a, b: (a - b).square().mean()  # noqa: E731
    pairs = [mse(z[i], z[j]) for i, j in itertools.combinations(range(V), 2)]
    _close(_value("mse", z), sum(pairs) / len(pairs))
    to_global = [mse(z[a], z[g]) for a in range(V) for g in range(G) if a != g]
    _close(_value("mse[to_global]", z), sum(to_global) / len(to_global))
    centre = (z[0] + z[1]) / 2
    _close(_value("mse[to_global_mean]", z), sum(mse(v, centre) for v in z) / V)


def test_predictions_chase_the_global_targets() -> None:
    z, p = _views(), _views(seed=1)
    expected = [negative_cosine(p[a], z[g]) for a in range(V) for g in range(G) if a != g]
    _close(_value("negative_cosine", z, p), sum(expected) / len(expected))


def test_regularizer_pair_and_set_choices() -> None:
    z = _views()
    _close(_value("coding_rate", z), -sum(coding_rate(v) for v in z) / V)  # maximized: sign -1
    _close(_value("coding_rate[global]", z), -(coding_rate(z[0]) + coding_rate(z[1])) / 2)
    _close(_value("covariance_penalty", z), sum(covariance_penalty(v) for v in z))  # its paper sums
    pairs = [info_nce_loss(z[i], z[j]) for i, j in itertools.combinations(range(V), 2)]
    _close(_value("info_nce", z), sum(pairs) / len(pairs))
    _close(_value("info_nce[global]", z), info_nce_loss(z[0], z[1]))
    _close(_value("mmcr", z), mmcr_loss(z)["loss"])
    _close(_value("mmcr[global]", z), mmcr_loss(z[:G])["loss"])


def test_stateful_terms_see_the_global_pair_or_every_view() -> None:
    z = _views()
    objective = Objective.from_spec("sigreg[all]", dim=6).eval()
    expected = objective.stateful["sigreg"](*z)
    _close(objective.over_views(z, num_global=G).loss, expected)
    objective = Objective.from_spec("corinfomax", dim=6).eval()
    _close(objective.over_views(z, num_global=G).loss, objective.stateful["corinfomax"](z[0], z[1]))


@pytest.mark.parametrize(
    "spec",
    ["mse:25 + variance_hinge:25 + covariance_penalty:1", "barlow_twins", "info_nce(temperature=0.5)",
     "cosine + coding_rate(eps=0.5):0.005; normalize", "frossl", "negative_cosine"],
)
def test_two_views_are_exactly_the_two_view_objective(spec: str) -> None:
    z1, z2 = _views(2)
    p1, p2 = _views(2, seed=3)
    objective = Objective.from_spec(spec)
    extra = (p1, p2) if objective.needs_predictions else ()
    two_view = objective(z1, z2, *extra).loss
    assert torch.equal(objective.over_views([z1, z2], list(extra) or None, num_global=2).loss, two_view)


def test_the_views_choice_round_trips_and_is_checked() -> None:
    text = "mse[to_global_mean]:0.95 + sigreg[all]:0.05 + coding_rate[global](eps=0.5):0.1"
    assert Objective.from_spec(text, dim=6).spec == text
    assert parse_spec(Objective.from_spec(text, dim=6).spec) == parse_spec(text)
    with pytest.raises(ValueError, match=r"views of 'coding_rate': expected one of \('all', 'global'\)"):
        Objective.from_spec("coding_rate[to_global]")
    with pytest.raises(ValueError, match="views of 'mse': expected one of"):
        Objective.from_spec("mse[everything]")


def test_bad_views_are_named() -> None:
    objective = Objective.from_spec("mse + variance_hinge")
    z = _views()
    with pytest.raises(ValueError, match="at least 2 embedding batches, got 1 views"):
        objective.over_views(z[:1])
    with pytest.raises(ValueError, match=r"z3: expected the same shape as z1 \(12, 6\), got \(12, 5\)"):
        objective.over_views([z[0], z[1], z[2][:, :5]])
    with pytest.raises(ValueError, match=r"num_global: expected an integer in \[1, 5\]"):
        objective.over_views(z, num_global=6)
    with pytest.raises(ValueError, match="p1, p2, p3, p4, p5: this objective has a predictor term"):
        Objective.from_spec("negative_cosine").over_views(z, num_global=2)
    bad = [v.clone() for v in z]
    bad[4][0, 0] = float("nan")
    with pytest.raises(ValueError, match="z5: expected finite values, got 1 NaN/inf entries"):
        objective.over_views(bad)


def test_gradients_reach_every_view() -> None:
    z = [v.requires_grad_(True) for v in _views()]
    _value("mse[to_global_mean] + variance_hinge", z).backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in z)


def test_a_distillation_term_sees_every_student_view_and_the_teachers_globals() -> None:
    from covssl.objectives import simdino_loss

    z, teacher = _views(), _views(G, seed=5)
    expected = simdino_loss(z, teacher)["loss"]
    _close(Objective.from_spec("simdino").over_views(z, num_global=G, targets=teacher).loss, expected)
    with pytest.raises(ValueError, match="targets: this objective compares the views with an EMA teacher"):
        Objective.from_spec("simdino").over_views(z, num_global=G)

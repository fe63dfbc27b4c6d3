"""Tests of covssl/objectives/simdino.py against independent float64 references."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.rate_distortion import coding_rate
from covssl.objectives.simdino import simdino_loss

# The package may re-export functions named like their modules, so get the module itself this way.
simdino_module = importlib.import_module("covssl.objectives.simdino")

# (student views, teacher views, batch, dim) on both sides of B = d.
SHAPES = [(4, 2, 3, 10), (6, 2, 8, 16), (3, 2, 16, 6), (5, 1, 7, 7), (2, 2, 20, 5)]


def _views(num_student: int, num_teacher: int, batch: int, dim: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, dim, generator=gen, dtype=torch.float64)

    def noisy() -> torch.Tensor:
        scale = torch.rand(batch, 1, generator=gen, dtype=torch.float64) + 0.5
        return (base + 0.7 * torch.randn(batch, dim, generator=gen, dtype=torch.float64)) * scale

    student = [noisy() for _ in range(num_student)]
    teacher = [student[g] + 0.3 * noisy() for g in range(num_teacher)]
    return student, teacher


def _unit(z: np.ndarray) -> np.ndarray:
    return np.array([row / math.sqrt(sum(x * x for x in row)) for row in z])


def _reference(student, teacher, eps, coeff, num_global, average_teacher=True):
    """(loss, distance, coding_rate) from the formulas with explicit loops and numpy slogdet."""
    ns, nt = [_unit(z) for z in student], [_unit(z) for z in teacher]
    batch, dim = ns[0].shape
    total, count = 0.0, 0
    for g in range(len(nt)):
        for v in range(len(ns)):
            if v == g and g < num_global:
                continue
            total += sum(0.5 * sum((nt[g][b] - ns[v][b]) ** 2) for b in range(batch)) / batch
            count += 1
    distance = total / count
    rate = 0.0
    for g in range(num_global):
        w = (ns[g] + nt[g]) / 2 if average_teacher else ns[g]
        cov = sum(np.outer(w[b], w[b]) for b in range(batch))
        sign, logdet = np.linalg.slogdet(np.eye(dim) + dim / (batch * eps) * cov)
        assert sign > 0
        rate += 0.5 * logdet / num_global
    rate *= (dim + batch) / (dim * batch)
    return -coeff * (1 - distance) - rate, distance, rate


def _official_style(student, teacher, eps, coeff):
    """MCRLoss(expa_type=1) written independently: broadcast cosines, diagonal mask, Cholesky."""
    s = torch.stack([F.normalize(z, dim=-1) for z in student])
    t = torch.stack([F.normalize(z, dim=-1) for z in teacher])
    sim = F.cosine_similarity(t.unsqueeze(1), s.unsqueeze(0), dim=-1).mean(-1)  # (T, S)
    mask = torch.ones_like(sim)
    for g in range(min(len(t), len(s))):
        mask[g, g] = 0
    comp = (sim * mask).sum() / mask.sum()
    w = (s[: len(t)] + t) / 2
    m, p = w[0].shape
    eye = torch.eye(p, dtype=w.dtype)
    expa = sum(torch.linalg.cholesky(eye + p / (m * eps) * wi.T @ wi).diagonal().log().sum() for wi in w)
    expa = expa / len(w) * (p + m) / (p * m)
    return -coeff * comp - expa


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("num_student", "num_teacher", "batch", "dim"), SHAPES)
@pytest.mark.parametrize(("eps", "coeff"), [(0.5, 1.0), (0.05, 3.0)])
def test_matches_an_explicit_loop_reference(num_student, num_teacher, batch, dim, eps, coeff) -> None:
    student, teacher = _views(num_student, num_teacher, batch, dim, seed=batch * 10 + dim)
    ref = _reference([z.numpy() for z in student], [z.numpy() for z in teacher], eps, coeff, num_teacher)
    for path in ("auto", "feature", "sample"):
        out = simdino_loss(student, teacher, eps=eps, coeff=coeff, path=path)
        assert out["loss"].item() == pytest.approx(ref[0], rel=1e-10)
        assert out["distance"].item() == pytest.approx(ref[1], rel=1e-10)
        assert out["coding_rate"].item() == pytest.approx(ref[2], rel=1e-10)


@pytest.mark.parametrize("average_teacher", [True, False])
@pytest.mark.parametrize("num_global", [1, 2])
def test_num_global_and_expansion_type(num_global: int, average_teacher: bool) -> None:
    student, teacher = _views(5, 3, 6, 9, seed=11)
    ref = _reference([z.numpy() for z in student], [z.numpy() for z in teacher], 0.5, 1.0, num_global, average_teacher)
    out = simdino_loss(student, teacher, num_global=num_global, average_teacher=average_teacher)
    for key, value in zip(("loss", "distance", "coding_rate"), ref):
        assert out[key].item() == pytest.approx(value, rel=1e-10)


@pytest.mark.parametrize(("num_student", "num_teacher", "batch", "dim"), [s for s in SHAPES if s[1] == 2])
def test_matches_the_official_forward_in_value_and_gradient(num_student, num_teacher, batch, dim) -> None:
    student, teacher = _views(num_student, num_teacher, batch, dim, seed=batch + dim)
    ref_leaves = [z.clone().requires_grad_(True) for z in student]
    ref = _official_style(ref_leaves, teacher, eps=0.5, coeff=1.0)
    ref_grads = torch.autograd.grad(ref, ref_leaves)
    leaves = [z.clone().requires_grad_(True) for z in student]
    loss = simdino_loss(leaves, teacher)["loss"]
    grads = torch.autograd.grad(loss, leaves)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    for g, r in zip(grads, ref_grads):
        assert _rel_err(g, r) < 1e-8
    assert float(grads[-1].abs().sum()) > 0  # local crops get gradient from the similarity


@pytest.mark.parametrize(("num_student", "num_teacher", "batch", "dim"), SHAPES)
def test_paths_agree_in_value_and_gradient(num_student, num_teacher, batch, dim) -> None:
    student, teacher = _views(num_student, num_teacher, batch, dim, seed=5)
    results = {}
    for path in ("feature", "sample"):
        leaves = [z.clone().requires_grad_(True) for z in student]
        out = simdino_loss(leaves, teacher, path=path)
        results[path] = (out["coding_rate"].detach(), torch.autograd.grad(out["loss"], leaves))
    assert _rel_err(results["sample"][0], results["feature"][0]) < 1e-8
    for gs, gf in zip(results["sample"][1], results["feature"][1]):
        assert _rel_err(gs, gf) < 1e-8


@pytest.mark.parametrize("path", ["feature", "sample"])
def test_gradcheck(path: str) -> None:
    student, teacher = _views(3, 2, 5, 4, seed=8)
    leaves = [z.requires_grad_(True) for z in (*student, *teacher)]

    def fn(*tensors: torch.Tensor) -> torch.Tensor:
        return simdino_loss(list(tensors[:3]), list(tensors[3:]), eps=0.7, coeff=2.0, path=path)["loss"]

    assert torch.autograd.gradcheck(fn, leaves)


def test_eps_is_unsquared_relative_to_covssl_coding_rate() -> None:
    student, teacher = _views(4, 2, 12, 9, seed=4)
    out = simdino_loss(student, teacher, eps=0.5, average_teacher=False)
    rates = [coding_rate(F.normalize(z, dim=1), eps=math.sqrt(0.5)) for z in student[:2]]
    expected = (9 + 12) / (9 * 12) * sum(rates) / 2
    assert out["coding_rate"].item() == pytest.approx(expected.item(), rel=1e-12)


# ---------------------------------------------------------------- properties


def test_collapsed_views_give_a_worse_coding_rate() -> None:
    batch, dim, eps = 10, 8, 0.5
    student, teacher = _views(4, 2, batch, dim, seed=5)
    u = torch.randn(1, dim, dtype=torch.float64)
    collapsed = [u.expand(batch, dim) * (k + 1) for k in range(4)]
    out = simdino_loss(collapsed, collapsed[:2], eps=eps)
    gamma = (dim + batch) / (dim * batch)
    assert out["coding_rate"].item() == pytest.approx(gamma * 0.5 * math.log(1 + dim / eps), rel=1e-12)
    assert out["distance"].item() == pytest.approx(0.0, abs=1e-12)
    assert simdino_loss(student, teacher, eps=eps)["coding_rate"] > out["coding_rate"] + 0.05


@settings(max_examples=20, deadline=None)
@given(
    num_student=st.integers(2, 6),
    batch=st.integers(2, 10),
    dim=st.integers(1, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_identical_views_give_the_best_distance(num_student: int, batch: int, dim: int, seed: int) -> None:
    student, teacher = _views(num_student, 2, batch, dim, seed)
    same = [student[0] * (k + 1.0) for k in range(num_student)]  # rows are normalized inside
    assert simdino_loss(same, same[:2])["distance"].item() == pytest.approx(0.0, abs=1e-12)
    distance = simdino_loss(student, teacher)["distance"].item()
    assert -1e-12 <= distance <= 2.0 + 1e-12
    opposite = simdino_loss([student[0], student[0]], [-student[0], -student[0]])["distance"].item()
    assert opposite == pytest.approx(2.0, abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(2, 10), dim=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_batch_and_local_view_permutation_invariance(batch: int, dim: int, seed: int) -> None:
    student, teacher = _views(6, 2, batch, dim, seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    base = simdino_loss(student, teacher)
    shuffled_locals = simdino_loss([*student[:2], *student[2:][::-1]], teacher)
    permuted = simdino_loss([z[perm] for z in student], [z[perm] for z in teacher])
    for moved in (shuffled_locals, permuted):
        for key in base:
            assert moved[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-10)


def test_loss_is_the_official_value() -> None:
    student, teacher = _views(4, 2, 8, 6, seed=6)
    out = simdino_loss(student, teacher, coeff=2.5)
    expected = 2.5 * (out["distance"] - 1) - out["coding_rate"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-14)


def test_degenerate_inputs_stay_finite() -> None:
    student, teacher = _views(3, 2, 6, 5, seed=7)
    student[0][0] = 0.0
    leaves = [z.clone().requires_grad_(True) for z in student]
    out = simdino_loss(leaves, [-leaves[0].detach(), torch.zeros(6, 5, dtype=torch.float64)])
    grads = torch.autograd.grad(out["loss"], leaves)
    assert all(bool(torch.isfinite(t).all()) for t in (*out.values(), *grads))


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    student, teacher = _views(4, 2, 8, 32, seed=10)
    student, teacher = [z.float() for z in student], [z.float() for z in teacher]
    reference = simdino_loss(student, teacher)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = simdino_loss(student, teacher)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    halves = simdino_loss([z.half() for z in student], [z.half() for z in teacher])
    assert all(v.dtype == torch.float32 for v in halves.values())
    assert simdino_loss([z.double() for z in student], teacher)["loss"].dtype == torch.float64


def _good() -> dict:
    return {"student_views": [torch.randn(4, 6) for _ in range(4)], "teacher_views": [torch.randn(4, 6)] * 2}


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"student_views": torch.randn(4, 4, 6)}, "student_views"),
        ({"student_views": [torch.randn(4, 6)]}, "student_views"),
        ({"student_views": [torch.randn(4, 6), torch.randn(4, 7)]}, r"student_views\[1\]"),
        ({"student_views": [torch.randn(4, 6), torch.randn(3, 6)]}, r"student_views\[1\]"),
        ({"student_views": [torch.randn(4, 6), torch.full((4, 6), float("inf"))]}, r"student_views\[1\]"),
        ({"teacher_views": []}, "teacher_views"),
        ({"teacher_views": torch.randn(4, 6)}, "teacher_views"),
        ({"teacher_views": [torch.randn(4, 6), torch.randn(4, 5)]}, r"teacher_views\[1\]"),
        ({"teacher_views": [torch.randn(4, 5)] * 2}, r"teacher_views\[0\]"),
        ({"teacher_views": [torch.randn(4, 6, dtype=torch.float64).int()]}, r"teacher_views\[0\]"),
        ({"num_global": 0}, "num_global"),
        ({"num_global": 3}, "num_global"),
        ({"num_global": 1.0}, "num_global"),
        ({"num_global": True}, "num_global"),
        ({"student_views": [torch.randn(4, 6)] * 2, "teacher_views": [torch.randn(4, 6)] * 3}, "num_global"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -0.5}, "eps"),
        ({"coeff": -1.0}, "coeff"),
        ({"coeff": None}, "coeff"),
        ({"average_teacher": 1}, "average_teacher"),
        ({"path": "gram"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}:"):
        simdino_loss(**(_good() | kwargs))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(simdino_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

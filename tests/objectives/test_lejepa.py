"""Tests of covssl/objectives/lejepa.py against independent float64 references."""

from __future__ import annotations

import cmath
import doctest
import importlib
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.lejepa import SIGRegRegularizer, lejepa_loss, sigreg
from covssl.objectives.slicing import random_directions

lejepa_module = importlib.import_module("covssl.objectives.lejepa")

SHAPES = [(2, 3, 1), (7, 5, 6), (12, 4, 9), (5, 9, 3), (16, 1, 2)]  # (batch, dim, slices)


def _batch(batch: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=gen, dtype=torch.float64) * 2 + 0.2
    return torch.randn(batch, dim, generator=gen, dtype=torch.float64) * scales + 0.3


def _directions(slices: int, dim: int, seed: int) -> torch.Tensor:
    g = torch.randn(slices, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return g / g.norm(dim=1, keepdim=True)


def _reference(z: list[list[float]], u: list[list[float]]) -> float:
    """SIGReg with complex numbers, loops over slices, knots and samples; official quadrature:
    t_j = 3 j / 16, weights dt (1, 2, ..., 2, 1) exp(-t^2 / 2) (twice the trapezoid rule on [0, 3])."""
    n_rows, dt = len(z), 3.0 / 16
    total = 0.0
    for direction in u:
        projected = [sum(a * b for a, b in zip(row, direction)) for row in z]
        statistic = 0.0
        for j in range(17):
            t = j * dt
            ecf = sum(cmath.exp(1j * t * p) for p in projected) / n_rows
            target = math.exp(-t * t / 2)
            weight = dt if j in (0, 16) else 2 * dt
            statistic += weight * abs(ecf - target) ** 2 * target
        total += n_rows * statistic
    return total / len(u)


def _knots() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The official knots t, twice the trapezoid weights, and phi(t) = exp(-t^2 / 2)."""
    t = torch.linspace(0, 3, 17, dtype=torch.float64)
    w = torch.full((17,), 2 * 3 / 16, dtype=torch.float64)
    w[[0, -1]] = 3 / 16
    return t, w, torch.exp(-t.square() / 2)


def _torch_reference(z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Written differently: complex ECF, trapezoid rule on the symmetric grid [-3, 3] (33 knots)."""
    t = torch.linspace(-3.0, 3.0, 33, dtype=z.dtype)
    projected = z @ u.T  # (N, K)
    ecf = torch.exp(1j * projected[:, :, None] * t).mean(dim=0)  # (K, T) complex
    integrand = (ecf - torch.exp(-t.square() / 2)).abs().square() * torch.exp(-t.square() / 2)
    return (torch.trapezoid(integrand, t, dim=1) * z.shape[0]).mean()


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim", "slices"), SHAPES)
def test_value_matches_a_loop_reference_and_gradient_a_torch_reference(batch: int, dim: int, slices: int) -> None:
    z, u = _batch(batch, dim, seed=batch + dim), _directions(slices, dim, seed=slices)
    assert sigreg(z, directions=u).item() == pytest.approx(_reference(z.tolist(), u.tolist()), rel=1e-10)
    a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    expected, value = _torch_reference(a, u), sigreg(b, directions=u)
    (expected_grad,), (grad,) = torch.autograd.grad(expected, a), torch.autograd.grad(value, b)
    assert value.item() == pytest.approx(expected.item(), rel=1e-10)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)


def test_gradcheck_with_fixed_directions() -> None:
    z, u = _batch(6, 4, seed=11).requires_grad_(True), _directions(5, 4, seed=12)
    assert torch.autograd.gradcheck(lambda x: sigreg(x, directions=u), (z,))
    views = tuple(_batch(5, 3, seed=s).requires_grad_(True) for s in range(3))
    u3 = u[:, :3] / u[:, :3].norm(dim=1, keepdim=True)
    assert torch.autograd.gradcheck(lambda *v: lejepa_loss(list(v), lambd=0.3, directions=u3)["loss"], views)


def test_gradient_matches_central_differences_of_the_loop_reference() -> None:
    z, u = _batch(5, 3, seed=13), _directions(2, 3, seed=14)
    leaf = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(sigreg(leaf, directions=u), leaf)
    h, rows, uu = 1e-6, z.tolist(), u.tolist()
    numeric = torch.zeros_like(z)
    for n, j in itertools.product(range(z.shape[0]), range(z.shape[1])):
        up, down = [r[:] for r in rows], [r[:] for r in rows]
        up[n][j], down[n][j] = up[n][j] + h, down[n][j] - h
        numeric[n, j] = (_reference(up, uu) - _reference(down, uu)) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- properties


def test_standard_gaussian_is_about_its_expectation_and_collapse_or_shift_is_large() -> None:
    # For i.i.d. N(0, 1) samples E[N |ecf(t) - phi(t)|^2] = 1 - exp(-t^2), whatever N.
    t, w, phi = _knots()
    expected = float((w * phi * (1 - torch.exp(-t.square()))).sum())  # ~ 1.05
    gen = torch.Generator().manual_seed(0)
    # slices along the axes of a (N, K) Gaussian sample are independent: the mean has std ~ 1/sqrt(K)
    independent = sigreg(torch.randn(1024, 512, generator=gen, dtype=torch.float64), directions=torch.eye(512))
    assert independent.item() == pytest.approx(expected, rel=0.15)
    gaussian = sigreg(torch.randn(2048, 8, generator=gen, dtype=torch.float64), num_slices=256).item()
    assert gaussian < 3.0
    collapsed = sigreg(torch.full((2048, 8), 0.5, dtype=torch.float64), num_slices=256).item()
    shifted = sigreg(torch.randn(2048, 8, generator=gen, dtype=torch.float64) + 2.0, num_slices=256).item()
    squeezed = sigreg(0.3 * torch.randn(2048, 8, generator=gen, dtype=torch.float64), num_slices=256).item()
    assert min(collapsed, shifted, squeezed) > 100 * gaussian


def test_statistic_scales_with_the_number_of_samples() -> None:
    z, u = _batch(40, 3, seed=1), _directions(7, 3, seed=2)
    # the same ECF with twice the samples (two ranks holding the same batch): exactly twice
    doubled = sigreg(torch.cat([z, z]), directions=u).item()
    assert doubled == pytest.approx(2 * sigreg(z, directions=u).item(), rel=1e-12)
    gen = torch.Generator().manual_seed(3)
    small = sigreg(torch.rand(500, 2, generator=gen, dtype=torch.float64) * 2, num_slices=32).item()
    large = sigreg(torch.rand(4000, 2, generator=gen, dtype=torch.float64) * 2, num_slices=32).item()
    assert 6.0 < large / small < 10.0  # ~ 8 = 4000 / 500 for a non-Gaussian sample


def test_gathered_batch_matches_the_official_per_rank_reduction() -> None:
    # Official: each rank averages its ECF, all-reduces with AVG, multiplies by N_local * W.
    ranks, u = [_batch(6, 4, seed=s) for s in range(3)], _directions(5, 4, seed=9)
    t, w, phi = _knots()
    angles = torch.stack([(z @ u.T)[:, :, None] * t for z in ranks])  # (W, B, K, T)
    cos, sin = angles.cos().mean(dim=1).mean(dim=0), angles.sin().mean(dim=1).mean(dim=0)  # AVG of local ECFs
    official = (((cos - phi).square() + sin.square()) @ (w * phi) * 6 * 3).mean().item()
    gathered = sigreg(torch.cat(ranks), directions=u).item()
    assert gathered == pytest.approx(official, rel=1e-12)
    assert gathered != pytest.approx(sum(sigreg(z, directions=u).item() for z in ranks) / 3, rel=1e-3)


def test_drawn_directions_are_those_of_the_generator_and_deterministic() -> None:
    z = _batch(20, 6, seed=1)
    drawn = sigreg(z, num_slices=7, generator=torch.Generator().manual_seed(9)).item()
    given_u = sigreg(z, directions=random_directions(7, 6, torch.Generator().manual_seed(9), dtype=z.dtype)).item()
    assert drawn == given_u == sigreg(z, num_slices=7, generator=torch.Generator().manual_seed(9)).item()
    assert sigreg(z, num_slices=7).item() == sigreg(z, num_slices=7, generator=torch.Generator().manual_seed(0)).item()
    assert sigreg(z, num_slices=7, generator=torch.Generator().manual_seed(10)).item() != drawn


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(2, 12), dim=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_invariant_to_permuting_the_samples(batch: int, dim: int, seed: int) -> None:
    z, u = _batch(batch, dim, seed), _directions(3, dim, seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    assert sigreg(z[perm], directions=u).item() == pytest.approx(sigreg(z, directions=u).item(), rel=1e-10)


@pytest.mark.parametrize("scale", [0.0, 1e-8, 1e4, 1e8])
def test_gradients_are_finite_for_collapsed_and_huge_input(scale: float) -> None:
    z = (0.7 + scale * torch.randn(32, 5, generator=torch.Generator().manual_seed(2))).requires_grad_(True)
    (grad,) = torch.autograd.grad(lejepa_loss([z, z * 1.1, z + 1], num_slices=16)["loss"], z)
    assert torch.isfinite(grad).all()


# ---------------------------------------------------------------- lejepa_loss


def _invariance_reference(views: list[list[list[float]]], num_global: int) -> float:
    n_views, n_rows, dim = len(views), len(views[0]), len(views[0][0])
    total = 0.0
    for n, j in itertools.product(range(n_rows), range(dim)):
        centre = sum(views[g][n][j] for g in range(num_global)) / num_global
        total += sum((views[v][n][j] - centre) ** 2 for v in range(n_views))
    return total / (n_views * n_rows * dim)


@pytest.mark.parametrize(("num_views", "num_global"), [(2, 1), (2, 2), (4, 2), (5, 3), (3, 3)])
def test_lejepa_matches_references(num_views: int, num_global: int) -> None:
    views, u = [_batch(6, 4, seed=s) for s in range(num_views)], _directions(5, 4, seed=0)
    out = lejepa_loss(views, num_global=num_global, lambd=0.2, directions=u)
    invariance = _invariance_reference([v.tolist() for v in views], num_global)
    statistic = sum(_reference(v.tolist(), u.tolist()) for v in views) / num_views  # every view, same u
    assert out["invariance"].item() == pytest.approx(invariance, rel=1e-12)
    assert out["sigreg"].item() == pytest.approx(statistic, rel=1e-10)
    assert out["loss"].item() == pytest.approx(0.8 * invariance + 0.2 * statistic, rel=1e-10)


def test_all_views_centre_identical_views_and_every_view_gets_a_gradient() -> None:
    views = [_batch(8, 4, seed=s).requires_grad_(True) for s in range(4)]
    proj = torch.stack(views)
    minimal = (proj.mean(0) - proj).square().mean()  # MINIMAL.md's invariance: centre on all views
    all_centred = lejepa_loss(views, num_global=4, num_slices=4)["invariance"]
    assert all_centred.item() == pytest.approx(minimal.item(), rel=1e-12)
    grads = torch.autograd.grad(lejepa_loss(views, num_global=2, lambd=1.0, num_slices=4)["loss"], views)
    assert all(g.abs().sum() > 0 for g in grads)  # SIGReg alone reaches the local views too
    z = views[0].detach()
    same = lejepa_loss([z, z.clone(), z.clone()], num_slices=8)
    assert same["invariance"].item() == 0.0  # identical views
    assert same["sigreg"].item() == pytest.approx(sigreg(z, num_slices=8).item(), rel=1e-12)


# ---------------------------------------------------------------- the stateful regularizer


def test_regularizer_draws_per_step_directions_shared_by_the_views() -> None:
    reg = SIGRegRegularizer(4, num_slices=5, seed=3)
    z1, z2 = _batch(10, 4, seed=1), _batch(10, 4, seed=2)
    for step in range(3):
        u = random_directions(5, 4, torch.Generator().manual_seed(3 + step), dtype=torch.float64)
        torch.testing.assert_close(reg.directions(dtype=torch.float64), u, rtol=0, atol=0)
        expected = (sigreg(z1, directions=u).item() + sigreg(z2, directions=u).item()) / 2
        assert reg(z1, z2).item() == pytest.approx(expected, rel=1e-12)
        assert int(reg.step) == step + 1
    assert reg(z1).item() == pytest.approx(sigreg(z1, directions=reg.directions(step=3, dtype=torch.float64)).item())
    views = [z1, z2, _batch(10, 4, seed=3)]  # more than two views: lejepa_loss's SIGReg, the step's slices
    expected = lejepa_loss(views, lambd=1.0, directions=reg.directions(dtype=torch.float64))["sigreg"]
    assert reg(*views).item() == pytest.approx(expected.item(), rel=1e-12)
    with pytest.raises(ValueError, match=r"^z2:"):
        reg(z1, None, z2)
    with pytest.raises(ValueError, match=r"^more\[0\]:"):
        reg(z1, z2, torch.randn(10, 5))
    with pytest.raises(ValueError, match=r"^z2:"):
        reg(z1, torch.full((10, 4), float("inf")))
    with pytest.raises(ValueError, match=r"^z1:"):
        reg(torch.randn(10, 5))
    assert int(reg.step) == 5  # bad views do not advance the step


def test_regularizer_eval_mode_keeps_the_step_and_state_dict_round_trips() -> None:
    reg = SIGRegRegularizer(6, num_slices=8, seed=4)
    z1, z2 = _batch(12, 6, seed=20), _batch(12, 6, seed=21)
    assert reg.eval()(z1, z2).item() == reg(z1, z2).item() and int(reg.step) == 0
    for step in range(3):
        reg.train()(_batch(12, 6, seed=step), _batch(12, 6, seed=10 + step))
    state = reg.state_dict()
    assert set(state) == {"step"} and int(state["step"]) == 3
    restored = SIGRegRegularizer(6, num_slices=8, seed=4)
    restored.load_state_dict(state)
    assert restored(z1, z2).item() == reg(z1, z2).item() and int(restored.step) == int(reg.step) == 4
    reg.reset_state()
    assert int(reg.step) == 0 and reg(z1, z2).item() == SIGRegRegularizer(6, num_slices=8, seed=4)(z1, z2).item()


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    views = [_batch(16, 8, seed=s).float() for s in range(3)]
    reference = lejepa_loss(views, num_slices=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = lejepa_loss(views, num_slices=8)
        single = sigreg(views[0], num_slices=8)
        module_value = SIGRegRegularizer(8, num_slices=8)(views[0].bfloat16(), views[1])
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert single.dtype == module_value.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in lejepa_loss([v.half() for v in views], num_slices=8).values())
    assert lejepa_loss([v.double() for v in views], num_slices=8)["loss"].dtype == torch.float64


VIEWS = [torch.randn(4, 6), torch.randn(4, 6)]
BAD_INPUT = [  # (function, argument, bad value)
    *[("lejepa", "views", v) for v in (torch.randn(2, 4, 6), VIEWS[:1], [VIEWS[0], torch.randn(5, 6)])],
    *[("lejepa", "views", [VIEWS[0], v]) for v in (torch.randn(4, 7), torch.full((4, 6), float("nan")))],
    *[("lejepa", "num_global", v) for v in (0, 3, True, 1.0, -1)],
    *[("lejepa", "lambd", v) for v in (-0.1, 1.5, "0.1", float("nan"))],
    *[("lejepa", "num_slices", v) for v in (0, 2.0, True)],
    *[("lejepa", "directions", v) for v in (torch.eye(5), torch.ones(3, 6))],
    ("lejepa", "generator", 0),
    *[("sigreg", "z", v) for v in (torch.ones(4), torch.ones(1, 6), torch.full((4, 6), float("inf")))],
    ("sigreg", "z", torch.ones(4, 6).int()),
    *[("sigreg", "directions", v) for v in (torch.ones(6), torch.eye(6)[:3] * 1.001, [[1.0] + [0.0] * 5])],
    *[("sigreg", "num_slices", v) for v in (-1, 1.5)],
    ("sigreg", "generator", "seed"),
    *[("regularizer", name, v) for name, v in (("dim", 0), ("num_slices", -2), ("seed", -1), ("seed", 1.5))],
]


@pytest.mark.parametrize(("function", "name", "value"), BAD_INPUT)
def test_bad_input_raises_value_error_naming_the_argument(function: str, name: str, value: object) -> None:
    call, args = {
        "lejepa": (lejepa_loss, {"views": VIEWS}),
        "sigreg": (sigreg, {"z": VIEWS[0]}),
        "regularizer": (SIGRegRegularizer, {"dim": 4}),
    }[function]
    with pytest.raises(ValueError, match=rf"^{name}(\[\d\])?:"):
        call(**(args | {name: value}))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(lejepa_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

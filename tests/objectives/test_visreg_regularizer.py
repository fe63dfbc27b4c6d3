"""Tests of covssl/objectives/visreg_regularizer.py against independent float64 references."""

from __future__ import annotations

import doctest
import importlib
import itertools
import math
from statistics import NormalDist

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.slicing import random_directions
from covssl.objectives.visreg_regularizer import VISRegRegularizer, visreg

# The package re-exports functions named like their modules, so get the module itself this way.
visreg_module = importlib.import_module("covssl.objectives.visreg_regularizer")

# (batch, dim, slices)
SHAPES = [(2, 3, 1), (7, 5, 6), (12, 4, 9), (5, 9, 3), (16, 1, 2)]
PARTS = ("scale", "shape", "centre")


def _batch(batch: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=gen, dtype=torch.float64) * 2 + 0.2
    return torch.randn(batch, dim, generator=gen, dtype=torch.float64) * scales + 0.3


def _directions(slices: int, dim: int, seed: int) -> torch.Tensor:
    g = torch.randn(slices, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return g / g.norm(dim=1, keepdim=True)


def _reference(z: list[list[float]], u: list[list[float]], frozen: list[float] | None = None) -> dict[str, float]:
    """The three terms of [0] with plain Python loops and statistics.NormalDist quantiles.

    ``frozen``: the standard deviations to standardize with (the stop-gradient), else z's own.
    """
    n_rows, dim = len(z), len(z[0])
    means = [sum(row[j] for row in z) / n_rows for j in range(dim)]
    stds = [math.sqrt(sum((row[j] - means[j]) ** 2 for row in z) / n_rows) for j in range(dim)]
    divisors = stds if frozen is None else frozen
    standardized = [[(row[j] - means[j]) / (divisors[j] + 1e-4) for j in range(dim)] for row in z]
    quantiles = [NormalDist().inv_cdf(n / (n_rows + 1)) for n in range(1, n_rows + 1)]
    shape = 0.0
    for direction in u:
        projected = sorted(sum(a * b for a, b in zip(row, direction)) for row in standardized)
        shape += sum((p - q) ** 2 for p, q in zip(projected, quantiles))
    return {
        "centre": sum(m**2 for m in means) / dim,
        "scale": sum((1 - s) ** 2 for s in stds) / dim,
        "shape": shape / (n_rows * len(u)),
    }


def _torch_reference(z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The loss with unit weights, written differently: var(correction=0), argsort + gather."""
    n_rows = z.shape[0]
    std = z.var(dim=0, correction=0).sqrt()
    centre = (z.sum(dim=0) / n_rows).pow(2).sum() / z.shape[1]
    scale = (std - 1).pow(2).sum() / z.shape[1]
    standardized = (z - z.mean(dim=0)) / (std.detach() + 1e-4)
    quantiles = torch.tensor([NormalDist().inv_cdf(n / (n_rows + 1)) for n in range(1, n_rows + 1)], dtype=z.dtype)
    shape = z.new_zeros(())
    for direction in u:
        projected = standardized @ direction
        shape = shape + (projected.gather(0, projected.argsort()) - quantiles).pow(2).sum()
    return scale + shape / (n_rows * u.shape[0]) + centre


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("batch", "dim", "slices"), SHAPES)
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (0.3, 2.0, 0.0)])
def test_matches_an_explicit_loop_reference(batch: int, dim: int, slices: int, weights: tuple) -> None:
    z, u = _batch(batch, dim, seed=batch + dim), _directions(slices, dim, seed=slices)
    expected = _reference(z.tolist(), u.tolist())
    names = ("scale_weight", "shape_weight", "centre_weight")
    out = visreg(z, directions=u, **dict(zip(names, weights)))
    for key in PARTS:
        assert out[key].item() == pytest.approx(expected[key], rel=1e-10, abs=1e-14)
    total = sum(w * expected[key] for w, key in zip(weights, PARTS))
    assert out["loss"].item() == pytest.approx(total, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize(("batch", "dim", "slices"), SHAPES)
def test_gradient_matches_an_independent_torch_reference(batch: int, dim: int, slices: int) -> None:
    z, u = _batch(batch, dim, seed=3 * batch + dim), _directions(slices, dim, seed=dim)
    a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    expected, loss = _torch_reference(a, u), visreg(b, directions=u)["loss"]
    (expected_grad,), (grad,) = torch.autograd.grad(expected, a), torch.autograd.grad(loss, b)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)


def test_gradcheck_of_scale_and_centre() -> None:
    z, u = _batch(6, 4, seed=11).requires_grad_(True), _directions(5, 4, seed=12)
    f = lambda x: visreg(x, directions=u, scale_weight=0.7, shape_weight=0.0, centre_weight=1.3)["loss"]  # noqa: E731
    assert torch.autograd.gradcheck(f, (z,))


def test_shape_gradient_is_the_derivative_with_the_std_held_fixed() -> None:
    # The stop-gradient makes the shape gradient the derivative at frozen s, which gradcheck
    # cannot see; central differences of the loop reference with s frozen at z's can.
    z, u = _batch(6, 4, seed=13), _directions(5, 4, seed=14)
    frozen = z.std(dim=0, correction=0).tolist()
    leaf = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(visreg(leaf, directions=u)["shape"], leaf)
    h, rows, uu = 1e-6, z.tolist(), u.tolist()
    numeric = torch.zeros_like(z)
    for n, j in itertools.product(range(z.shape[0]), range(z.shape[1])):
        up, down = [r[:] for r in rows], [r[:] for r in rows]
        up[n][j], down[n][j] = up[n][j] + h, down[n][j] - h
        numeric[n, j] = (_reference(up, uu, frozen)["shape"] - _reference(down, uu, frozen)["shape"]) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-8)


def test_drawn_directions_are_normalized_gaussian_rows_of_the_generator_and_deterministic() -> None:
    raw = torch.randn(6, 3, generator=torch.Generator().manual_seed(5))
    u = random_directions(6, 3, torch.Generator().manual_seed(5), dtype=torch.float64)
    assert u.shape == (6, 3) and u.dtype == torch.float64
    torch.testing.assert_close(u, (raw / raw.norm(dim=1, keepdim=True)).double(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-12)
    z = _batch(20, 6, seed=1)
    drawn = visreg(z, num_slices=7, generator=torch.Generator().manual_seed(9))
    given_u = visreg(z, directions=random_directions(7, 6, torch.Generator().manual_seed(9), dtype=z.dtype))
    again = visreg(z, num_slices=7, generator=torch.Generator().manual_seed(9))
    default, seed0 = visreg(z, num_slices=7), visreg(z, num_slices=7, generator=torch.Generator().manual_seed(0))
    other = visreg(z, num_slices=7, generator=torch.Generator().manual_seed(10))
    for key in drawn:
        assert drawn[key].item() == given_u[key].item() == again[key].item()
        assert default[key].item() == seed0[key].item()
    assert other["shape"].item() != drawn["shape"].item()
    assert other["scale"].item() == drawn["scale"].item()  # scale and centre use no direction


# ---------------------------------------------------------------- properties


def test_standard_gaussian_is_small_and_collapse_is_large() -> None:
    gen = torch.Generator().manual_seed(0)
    gaussian = visreg(torch.randn(4096, 8, generator=gen, dtype=torch.float64), num_slices=128)
    collapsed = visreg(2.0 + 1e-6 * torch.randn(4096, 8, generator=gen, dtype=torch.float64), num_slices=128)
    assert gaussian["loss"].item() < 0.01
    assert all(gaussian[key].item() < 0.005 for key in PARTS)
    # scale ~ 1, centre ~ 4, shape ~ mean_n Phi^-1(n / (N + 1))^2 ~ 1 (the projections ~ 0)
    assert collapsed["scale"].item() == pytest.approx(1.0, abs=1e-4)
    assert collapsed["centre"].item() == pytest.approx(4.0, rel=1e-6)
    assert 0.9 < collapsed["shape"].item() < 1.0
    assert collapsed["loss"].item() > 100 * gaussian["loss"].item()


def test_collapse_keeps_finite_gradients_that_do_not_vanish() -> None:
    exact = torch.full((32, 5), 0.7, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(visreg(exact, num_slices=16)["loss"], exact)
    assert torch.isfinite(grad).all()
    noise = 1e-7 * torch.randn(32, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    nearly = (0.7 + noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(visreg(nearly, num_slices=16, shape_weight=0.0, centre_weight=0.0)["loss"], nearly)
    # d scale / d z = -2 (1 - s_j) / d * (z - m) / (N s_j): norm 2 / (d sqrt(N)) per column, not ~ 0
    assert grad.norm().item() == pytest.approx(2 / (5 * math.sqrt(32)) * math.sqrt(5), rel=1e-3)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(2, 12), dim=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_centre_is_zero_for_centred_input_and_scale_for_unit_std(batch: int, dim: int, seed: int) -> None:
    z = _batch(batch, dim, seed)
    centred = z - z.mean(dim=0)
    assert visreg(centred, num_slices=2)["centre"].item() == pytest.approx(0.0, abs=1e-28)
    unit_std = centred / centred.pow(2).mean(dim=0).sqrt()
    assert visreg(unit_std + 5.0, num_slices=2)["scale"].item() == pytest.approx(0.0, abs=1e-28)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(2, 12), dim=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_invariant_to_permuting_the_samples(batch: int, dim: int, seed: int) -> None:
    z, u = _batch(batch, dim, seed), _directions(4, dim, seed)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    base, permuted = visreg(z, directions=u), visreg(z[perm], directions=u)
    for key in base:
        assert permuted[key].item() == pytest.approx(base[key].item(), rel=1e-10, abs=1e-14)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(3, 12), dim=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), shift=st.floats(-5, 5))
def test_shape_ignores_per_dimension_scale_and_shift(batch: int, dim: int, seed: int, shift: float) -> None:
    # Up to the 1e-4 added to the standard deviation, which matters relative to s_j ~ 1.
    z, u = _batch(batch, dim, seed), _directions(3, dim, seed)
    z = z / z.std(dim=0, correction=0)
    s = torch.rand(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.5
    base, moved = visreg(z, directions=u)["shape"].item(), visreg(z * s + shift, directions=u)["shape"].item()
    assert moved == pytest.approx(base, rel=1e-3, abs=1e-6)


# ---------------------------------------------------------------- the stateful regularizer


def test_regularizer_draws_per_step_directions_shared_by_the_views() -> None:
    reg = VISRegRegularizer(4, num_slices=5, seed=3, scale_weight=0.5)
    z1, z2 = _batch(10, 4, seed=1), _batch(10, 4, seed=2)
    for step in range(3):
        u = random_directions(5, 4, torch.Generator().manual_seed(3 + step), dtype=torch.float64)
        torch.testing.assert_close(reg.directions(dtype=torch.float64), u, rtol=0, atol=0)
        expected = sum(visreg(z, directions=u, scale_weight=0.5)["loss"].item() for z in (z1, z2)) / 2
        assert reg(z1, z2).item() == pytest.approx(expected, rel=1e-12)
        assert int(reg.step) == step + 1
    one_view = visreg(z1, directions=reg.directions(dtype=torch.float64), scale_weight=0.5)["loss"]
    assert reg(z1).item() == pytest.approx(one_view.item(), rel=1e-12)
    leaves = (z1.clone().requires_grad_(True), z2.clone().requires_grad_(True))
    assert all(g.abs().sum() > 0 for g in torch.autograd.grad(reg(*leaves), leaves))  # both views


def test_regularizer_eval_mode_keeps_the_step() -> None:
    reg = VISRegRegularizer(4, num_slices=5)
    z = _batch(10, 4, seed=1)
    reg.eval()
    first, second = reg(z, z).item(), reg(z, z).item()
    assert first == second and int(reg.step) == 0
    reg.train()
    assert reg(z, z).item() == first and int(reg.step) == 1
    assert reg(z, z).item() != first


def test_state_dict_round_trip_reproduces_the_next_value() -> None:
    reg = VISRegRegularizer(6, num_slices=8, seed=4)
    for step in range(3):
        reg(_batch(12, 6, seed=step), _batch(12, 6, seed=10 + step))
    state = reg.state_dict()
    assert set(state) == {"step"} and int(state["step"]) == 3
    restored = VISRegRegularizer(6, num_slices=8, seed=4)
    restored.load_state_dict(state)
    z1, z2 = _batch(12, 6, seed=20), _batch(12, 6, seed=21)
    assert restored(z1, z2).item() == reg(z1, z2).item()
    assert int(restored.step) == int(reg.step) == 4
    reg.reset_state()  # back to step 0: the first value of a fresh regularizer
    assert int(reg.step) == 0 and reg(z1, z2).item() == VISRegRegularizer(6, num_slices=8, seed=4)(z1, z2).item()


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z = _batch(16, 8, seed=9).float()
    reference = visreg(z, num_slices=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = visreg(z, num_slices=8)
        module_value = VISRegRegularizer(8, num_slices=8)(z.bfloat16(), z)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert module_value.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in visreg(z.half(), num_slices=8).values())
    assert visreg(z.double(), num_slices=8)["loss"].dtype == torch.float64


BAD_INPUT = [
    *[("z", v) for v in (torch.ones(4), torch.ones(1, 6), torch.full((4, 6), float("nan")), torch.ones(4, 6).int())],
    ("directions", torch.ones(6)),  # 1-D
    ("directions", torch.eye(5)),  # d does not match
    ("directions", torch.ones(3, 6)),  # rows of norm sqrt(6)
    ("directions", torch.eye(6)[:3] * 1.001),  # norm off by 1e-3
    *[("directions", v) for v in (torch.full((2, 6), float("nan")), torch.eye(6).long(), [[1.0] + [0.0] * 5])],
    *[("num_slices", v) for v in (0, 2.0, True)],
    *[("scale_weight", -1.0), ("shape_weight", float("inf")), ("centre_weight", "1"), ("generator", 0)],
]


@pytest.mark.parametrize(("name", "value"), BAD_INPUT)
def test_bad_input_raises_value_error_naming_the_argument(name: str, value: object) -> None:
    args = {"z": torch.randn(4, 6), name: value}
    with pytest.raises(ValueError, match=rf"^{name}:"):
        visreg(**args)


@pytest.mark.parametrize(
    ("name", "value"), [("dim", 0), ("num_slices", -2), ("seed", -1), ("seed", 1.5), ("shape_weight", -0.5)]
)
def test_regularizer_bad_arguments(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{name}:"):
        VISRegRegularizer(**{"dim": 4, name: value})


def test_regularizer_bad_views() -> None:
    reg = VISRegRegularizer(4, num_slices=3)
    with pytest.raises(ValueError, match=r"^z1:"):
        reg(torch.randn(8, 5))
    with pytest.raises(ValueError, match=r"^z2:"):
        reg(torch.randn(8, 4), torch.full((8, 4), float("inf")))
    assert int(reg.step) == 0


def test_docstring_examples_run() -> None:
    result = doctest.testmod(visreg_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

"""Tests of covssl/objectives/tico.py: a step-by-step float64 reference, gradients, state."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.tico import TiCoRegularizer, tico_loss

tico_module = importlib.import_module("covssl.objectives.tico")


class ReferenceTiCo:
    """The paper's update and loss written out in numpy float64 with loops, one step per call."""

    def __init__(self, dim: int, beta: float, rho: float) -> None:
        self.cov = np.zeros((dim, dim))
        self.beta, self.rho = beta, rho

    def step(self, z1: np.ndarray, z2: np.ndarray) -> dict[str, float]:
        batch = z1.shape[0]
        n1 = [row / math.sqrt(float(row @ row)) for row in z1]
        n2 = [row / math.sqrt(float(row @ row)) for row in z2]
        batch_cov = sum(np.outer(row, row) for row in n1) / batch
        self.cov = self.beta * self.cov + (1 - self.beta) * batch_cov
        invariance = 1.0 - sum(float(a @ b) for a, b in zip(n1, n2)) / batch
        contrast = sum(float(row @ self.cov @ row) for row in n1) / batch
        return {"invariance": invariance, "contrast": contrast, "loss": invariance + self.rho * contrast}


def _views(seed: int, batch: int, dim: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=gen, dtype=dtype) * torch.linspace(0.2, 2.0, dim, dtype=dtype) + 0.3
    return z1, z1 + 0.2 * torch.randn(batch, dim, generator=gen, dtype=dtype)


def _some_cov(dim: int, seed: int) -> torch.Tensor:
    """A running covariance after a few steps: symmetric PSD with trace < 1."""
    cov = torch.zeros(dim, dim, dtype=torch.float64)
    for step in range(3):
        cov = tico_loss(*_views(seed + step, 9, dim), cov)[1]
    return cov


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(
    ("batch", "dim", "beta", "rho"),
    [(16, 6, 0.9, 8.0), (5, 12, 0.9, 20.0), (12, 4, 0.0, 1.5), (7, 7, 0.5, 0.0)],
)
def test_three_consecutive_steps_match_the_reference(batch: int, dim: int, beta: float, rho: float) -> None:
    reg = TiCoRegularizer(dim, beta=beta, rho=rho).double()
    ref = ReferenceTiCo(dim, beta, rho)
    cov = torch.zeros(dim, dim, dtype=torch.float64)
    for step in range(3):
        z1, z2 = _views(step, batch, dim)
        expected = ref.step(z1.numpy(), z2.numpy())
        terms, cov = tico_loss(z1, z2, cov, beta=beta, rho=rho)
        for key in ("loss", "invariance", "contrast"):
            assert terms[key].item() == pytest.approx(expected[key], rel=1e-12, abs=1e-14), (step, key)
        assert reg(z1, z2).item() == pytest.approx(expected["loss"], rel=1e-12, abs=1e-14)
        np.testing.assert_allclose(cov.numpy(), ref.cov, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(reg.cov.numpy(), ref.cov, rtol=1e-12, atol=1e-15)
    assert int(reg.steps) == 3


def test_gradcheck_with_a_fixed_covariance() -> None:
    cov = _some_cov(4, seed=1)
    z1, z2 = (z.requires_grad_(True) for z in _views(5, 6, 4))
    # z2 never enters the covariance: the plain function
    assert torch.autograd.gradcheck(lambda b: tico_loss(z1.detach(), b, cov, rho=3.0)[0]["loss"], (z2,))
    # z1 also feeds C_t, under a stop-gradient: the gradient is that of the loss with C_t frozen
    _, c_t = tico_loss(z1, z2, cov, rho=3.0)

    def frozen(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        na, nb = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
        return 1 - (na * nb).sum(dim=1).mean() + 3.0 * ((na @ c_t) * na).sum(dim=1).mean()

    assert torch.autograd.gradcheck(frozen, (z1, z2))
    for g, f in zip(
        torch.autograd.grad(tico_loss(z1, z2, cov, rho=3.0)[0]["loss"], (z1, z2)),
        torch.autograd.grad(frozen(z1, z2), (z1, z2)),
    ):
        torch.testing.assert_close(g, f, rtol=1e-12, atol=1e-14)
    # ... so a finite difference of the full function, which moves C_t too, disagrees with it
    (grad1,) = torch.autograd.grad(tico_loss(z1, z2, cov, rho=3.0)[0]["loss"], z1)
    direction, h = torch.randn(z1.shape, generator=torch.Generator().manual_seed(0), dtype=z1.dtype), 1e-6
    with torch.no_grad():
        plus = tico_loss(z1 + h * direction, z2, cov, rho=3.0)[0]["loss"]
        minus = tico_loss(z1 - h * direction, z2, cov, rho=3.0)[0]["loss"]
    assert abs(((plus - minus) / (2 * h) - (grad1 * direction).sum()).item()) > 1e-3


def _sphere_projection(z: torch.Tensor, grad_n: torch.Tensor) -> torch.Tensor:
    """Chain rule through n = z / ||z||: dL/dz = (dL/dn - <dL/dn, n> n) / ||z|| per row."""
    norms = z.norm(dim=1, keepdim=True)
    n = z / norms
    return (grad_n - (grad_n * n).sum(dim=1, keepdim=True) * n) / norms


@pytest.mark.parametrize(("batch", "dim"), [(8, 5), (4, 9)])
def test_no_gradient_flows_through_the_covariance_update(batch: int, dim: int) -> None:
    beta, rho = 0.7, 5.0
    cov = _some_cov(dim, seed=2)
    z1, z2 = (z.requires_grad_(True) for z in _views(3, batch, dim))
    terms, new_cov = tico_loss(z1, z2, cov, beta=beta, rho=rho)
    assert not new_cov.requires_grad and new_cov.grad_fn is None
    grad1, grad2 = torch.autograd.grad(terms["loss"], (z1, z2))
    # With C_t a constant: dL/dn1_i = (-n2_i + 2 rho C_t n1_i) / B and dL/dn2_i = -n1_i / B.
    with torch.no_grad():
        n1, n2 = z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)
        c_t = beta * cov + (1 - beta) * n1.T @ n1 / batch
        expected1 = _sphere_projection(z1, (-n2 + 2 * rho * n1 @ c_t) / batch)
        expected2 = _sphere_projection(z2, -n1 / batch)
        # Were the batch term differentiated, its part of the gradient would double: an extra
        # 2 rho (1 - beta) / B^2 sum_j <n1_i, n1_j> n1_j for each row i.
        extra = _sphere_projection(z1, 2 * rho * (1 - beta) * (n1 @ n1.T) @ n1 / batch**2)
    torch.testing.assert_close(grad1, expected1, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad2, expected2, rtol=1e-12, atol=1e-14)
    # the same check against autograd through an undetached batch covariance
    leaf = z1.detach().clone().requires_grad_(True)
    n = torch.nn.functional.normalize(leaf, dim=1)
    c_full = beta * cov + (1 - beta) * n.T @ n / batch
    undetached = 1 - (n * torch.nn.functional.normalize(z2.detach(), dim=1)).sum(1).mean()
    undetached = undetached + rho * ((n @ c_full) * n).sum(1).mean()
    (grad_full,) = torch.autograd.grad(undetached, leaf)
    torch.testing.assert_close(grad_full - grad1, extra, rtol=1e-10, atol=1e-13)
    assert extra.abs().max() > 1e-3


def test_state_is_detached_and_gradient_flows_only_through_the_current_batch() -> None:
    reg = TiCoRegularizer(4).double()
    first = [z.requires_grad_(True) for z in _views(0, 8, 4)]
    reg(*first)
    assert not reg.cov.requires_grad and reg.cov.grad_fn is None
    second = [z.requires_grad_(True) for z in _views(1, 8, 4)]
    grads = torch.autograd.grad(reg(*second), first + second, allow_unused=True)
    assert grads[0] is None and grads[1] is None
    assert grads[2].abs().sum() > 0 and grads[3].abs().sum() > 0


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 10), dim=st.integers(1, 8), steps=st.integers(1, 4), beta=st.floats(0.0, 0.99))
def test_trace_of_the_running_covariance(batch: int, dim: int, steps: int, beta: float) -> None:
    # unit rows: tr(zn^T zn / B) = 1, so tr C_t = 1 - beta^t from C_0 = 0
    cov = torch.zeros(dim, dim, dtype=torch.float64)
    for step in range(steps):
        cov = tico_loss(*_views(step, batch, dim), cov, beta=beta)[1]
    assert torch.trace(cov).item() == pytest.approx(1 - beta**steps, rel=1e-12, abs=1e-15)
    torch.testing.assert_close(cov, cov.T, rtol=0, atol=1e-15)


@pytest.mark.parametrize("steps", [1, 3])
def test_collapse_costs_rho_times_the_accumulated_weight(steps: int) -> None:
    reg = TiCoRegularizer(5, beta=0.9, rho=8.0).double()
    z = torch.tensor([0.3, -1.0, 2.0, 0.5, 0.1], dtype=torch.float64).expand(16, 5)
    for _ in range(steps):
        value = reg(z, 2.0 * z)  # same direction: invariance 0, every cosine 1
    assert value.item() == pytest.approx(8.0 * (1 - 0.9**steps), rel=1e-12)


def test_zero_rows_stay_finite() -> None:
    z1, z2 = (z.clone() for z in _views(4, 6, 3))
    z1[1] = 0.0
    z1.requires_grad_(True)
    terms, cov = tico_loss(z1, z2, torch.zeros(3, 3, dtype=torch.float64))
    (grad,) = torch.autograd.grad(terms["loss"], z1)
    assert all(torch.isfinite(v) for v in terms.values()) and torch.isfinite(cov).all()
    assert torch.isfinite(grad).all()


# ---------------------------------------------------------------- the stateful module


def test_eval_mode_does_not_update_and_train_mode_does() -> None:
    reg = TiCoRegularizer(4)
    before = {k: v.clone() for k, v in reg.state_dict().items()}
    reg.eval()
    first = reg(*_views(0, 8, 4))
    assert all(torch.equal(before[k], v) for k, v in reg.state_dict().items())
    assert reg(*_views(0, 8, 4)).item() == first.item()
    reg.train()
    reg(*_views(0, 8, 4))
    assert int(reg.steps) == 1 and not torch.equal(before["cov"], reg.cov)


def test_state_dict_round_trip() -> None:
    reg = TiCoRegularizer(5, beta=0.5, rho=2.0)
    for step in range(3):
        reg(*_views(step, 8, 5, torch.float32))
    state = reg.state_dict()
    assert set(state) == {"cov", "steps"} and state["cov"].dtype == torch.float32
    restored = TiCoRegularizer(5, beta=0.5, rho=2.0)
    restored.load_state_dict(state)
    z1, z2 = _views(7, 8, 5, torch.float32)
    assert restored(z1, z2).item() == reg(z1, z2).item()
    assert torch.equal(restored.cov, reg.cov) and int(restored.steps) == 4


def test_reset_state() -> None:
    reg = TiCoRegularizer(4)
    for step in range(2):
        reg(*_views(step, 8, 4))
    reg.reset_state()
    assert torch.equal(reg.cov, torch.zeros(4, 4)) and int(reg.steps) == 0
    z1, z2 = _views(9, 8, 4)
    assert reg(z1, z2).item() == TiCoRegularizer(4)(z1, z2).item()


def test_dtypes_and_autocast() -> None:
    z1, z2 = _views(0, 16, 6, torch.float32)
    reference = TiCoRegularizer(6)(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = TiCoRegularizer(6)(z1, z2)
    assert under_autocast.dtype == torch.float32 and torch.equal(under_autocast, reference)
    assert TiCoRegularizer(6)(z1.bfloat16(), z2.bfloat16()).dtype == torch.float32
    reg = TiCoRegularizer(6)
    assert reg(z1.double(), z2.double()).dtype == torch.float64 and reg.cov.dtype == torch.float32
    terms, cov = tico_loss(z1.half(), z2.half(), torch.zeros(6, 6, dtype=torch.float16))
    assert terms["loss"].dtype == torch.float32 and cov.dtype == torch.float32


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"cov": torch.zeros(6, 7)}, "cov"),
        ({"cov": torch.zeros(5, 5)}, "cov"),
        ({"cov": torch.zeros(6)}, "cov"),
        ({"cov": np.zeros((6, 6))}, "cov"),
        ({"cov": torch.zeros(6, 6, dtype=torch.int64)}, "cov"),
        ({"cov": torch.full((6, 6), float("nan"))}, "cov"),
        ({"beta": 1.0}, "beta"),
        ({"beta": 1.5}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"beta": "0.9"}, "beta"),
        ({"rho": -1.0}, "rho"),
        ({"rho": float("nan")}, "rho"),
        ({"z1": torch.ones(4)}, "z1"),
        ({"z2": torch.ones(4, 7)}, "z2"),
        ({"z1": torch.ones(1, 6), "z2": torch.ones(1, 6)}, "z1"),
        ({"z2": torch.full((4, 6), float("inf"))}, "z2"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"z1": torch.randn(4, 6), "z2": torch.randn(4, 6), "cov": torch.zeros(6, 6)} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        tico_loss(**args)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"dim": 0}, "dim"), ({"dim": 2.0}, "dim"), ({"dim": True}, "dim"), ({"beta": 1.0}, "beta"), ({"rho": -2}, "rho")],
)
def test_bad_regularizer_parameters(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}:"):
        TiCoRegularizer(**({"dim": 4} | kwargs))


def test_regularizer_checks_the_embedding_dimension() -> None:
    reg = TiCoRegularizer(4)
    with pytest.raises(ValueError, match=r"^z1:"):
        reg(torch.randn(8, 5), torch.randn(8, 5))
    with pytest.raises(ValueError, match=r"^z2:"):
        reg(torch.randn(8, 4), torch.randn(8, 5))
    assert int(reg.steps) == 0


def test_docstring_examples_run() -> None:
    result = doctest.testmod(tico_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

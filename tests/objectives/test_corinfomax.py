"""CorInfoMax (Ozsoy et al. 2022): running estimates, checkpoints and a float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covssl.objectives.corinfomax import CorInfoMaxRegularizer, corinfomax_loss


class ReferenceCorInfoMax:
    """The official update and loss written out in numpy float64, one step per call."""

    def __init__(self, dim: int, eps: float, lam_r: float, lam_mu: float, r_init: float) -> None:
        self.r = [r_init * np.eye(dim), r_init * np.eye(dim)]
        self.mu = [np.zeros(dim), np.zeros(dim)]
        self.eps, self.lam_r, self.lam_mu, self.dim = eps, lam_r, lam_mu, dim

    def step(self, z1: np.ndarray, z2: np.ndarray, align_weight: float, logdet_weight: float) -> dict[str, float]:
        logdets = []
        for k, z in enumerate((z1.astype(np.float64), z2.astype(np.float64))):
            batch = z.shape[0]
            mu = self.lam_mu * self.mu[k] + (1 - self.lam_mu) * z.sum(axis=0) / batch
            r_batch = sum(np.outer(row - mu, row - mu) for row in z) / batch
            r = self.lam_r * self.r[k] + (1 - self.lam_r) * r_batch
            sign, logdet = np.linalg.slogdet(r + self.eps * np.eye(self.dim))
            assert sign > 0
            logdets.append(logdet)
            self.r[k], self.mu[k] = r, mu
        alignment = float(np.mean((z1.astype(np.float64) - z2.astype(np.float64)) ** 2))
        logdet = (logdets[0] + logdets[1]) / self.dim
        return {"alignment": alignment, "logdet": logdet, "loss": align_weight * alignment - logdet_weight * logdet}


def _views(seed: int, batch: int, dim: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=gen, dtype=dtype) * torch.linspace(0.2, 2.0, dim, dtype=dtype) + 0.5
    return z1, z1 + 0.1 * torch.randn(batch, dim, generator=gen, dtype=dtype)


@pytest.mark.parametrize(
    ("batch", "dim", "kwargs"),
    [
        (16, 6, {}),  # the official defaults: eps 1e-8, lambda 0.01, R_0 = I
        (5, 8, {}),  # B < d: the stored estimate keeps R + eps I positive definite
        (12, 4, {"eps": 1e-3, "lambda_r": 0.9, "lambda_mu": 0.5, "r_init": 2.0}),
    ],
)
def test_two_consecutive_steps_match_the_reference(batch: int, dim: int, kwargs: dict) -> None:
    params = {"eps": 1e-8, "lambda_r": 0.01, "lambda_mu": 0.01, "r_init": 1.0, **kwargs}
    reg = CorInfoMaxRegularizer(dim, **params)
    ref = ReferenceCorInfoMax(dim, params["eps"], params["lambda_r"], params["lambda_mu"], params["r_init"])
    for step in range(2):
        z1, z2 = _views(step, batch, dim)
        out = corinfomax_loss(z1, z2, reg, align_weight=7.0, logdet_weight=0.5)
        expected = ref.step(z1.numpy(), z2.numpy(), align_weight=7.0, logdet_weight=0.5)
        for key in ("loss", "alignment", "logdet"):
            assert out[key].item() == pytest.approx(expected[key], rel=1e-9, abs=1e-9), (step, key)
        np.testing.assert_allclose(reg.r1.numpy(), ref.r[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(reg.mu2.numpy(), ref.mu[1], rtol=1e-12, atol=1e-14)
    assert int(reg.steps) == 2


def test_regularizer_is_minus_the_logdet_term() -> None:
    z1, z2 = _views(0, 10, 4)
    a, b = CorInfoMaxRegularizer(4), CorInfoMaxRegularizer(4)
    assert a(z1, z2).item() == pytest.approx(-corinfomax_loss(z1, z2, b)["logdet"].item(), rel=1e-12)


def test_state_is_detached_and_gradient_flows_only_through_the_current_batch() -> None:
    reg = CorInfoMaxRegularizer(4)
    first = [z.requires_grad_(True) for z in _views(0, 8, 4)]
    reg(*first)
    assert not reg.r1.requires_grad and reg.r1.grad_fn is None
    second = [z.requires_grad_(True) for z in _views(1, 8, 4)]
    grads = torch.autograd.grad(reg(*second), first + second, allow_unused=True)
    assert grads[0] is None and grads[1] is None
    assert grads[2].abs().sum() > 0 and grads[3].abs().sum() > 0


def test_gradcheck_in_eval_mode() -> None:
    """Eval mode leaves the state alone, so repeated evaluations are one function of z."""
    reg = CorInfoMaxRegularizer(3, eps=1e-4)
    for step in range(2):  # a non-trivial running state first
        reg(*_views(10 + step, 6, 3))
    reg.eval()
    z1, z2 = (z.requires_grad_(True) for z in _views(20, 6, 3))
    assert torch.autograd.gradcheck(lambda a, b: corinfomax_loss(a, b, reg, align_weight=3.0)["loss"], (z1, z2))
    assert int(reg.steps) == 2


def test_eval_mode_does_not_update_and_train_mode_does() -> None:
    reg = CorInfoMaxRegularizer(4)
    before = {k: v.clone() for k, v in reg.state_dict().items()}
    reg.eval()
    reg(*_views(0, 8, 4))
    assert all(torch.equal(before[k], v) for k, v in reg.state_dict().items())
    reg.train()
    reg(*_views(0, 8, 4))
    assert int(reg.steps) == 1
    assert not torch.equal(before["r1"], reg.r1) and not torch.equal(before["mu2"], reg.mu2)


def test_state_dict_round_trip() -> None:
    reg = CorInfoMaxRegularizer(5, lambda_r=0.5, lambda_mu=0.3)
    for step in range(3):
        reg(*_views(step, 8, 5))
    state = reg.state_dict()
    assert set(state) == {"r1", "r2", "mu1", "mu2", "steps"}
    assert state["r1"].dtype == torch.float64
    restored = CorInfoMaxRegularizer(5, lambda_r=0.5, lambda_mu=0.3)
    restored.load_state_dict(state)
    z1, z2 = _views(7, 8, 5)
    assert restored(z1, z2).item() == reg(z1, z2).item()
    assert torch.equal(restored.r2, reg.r2) and int(restored.steps) == 4


def test_reset_state() -> None:
    reg = CorInfoMaxRegularizer(4, r_init=3.0)
    for step in range(2):
        reg(*_views(step, 8, 4))
    reg.reset_state()
    torch.testing.assert_close(reg.r1, 3.0 * torch.eye(4, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(reg.mu2, torch.zeros(4, dtype=torch.float64), rtol=0, atol=0)
    assert int(reg.steps) == 0
    z1, z2 = _views(9, 8, 4)
    assert reg(z1, z2).item() == CorInfoMaxRegularizer(4, r_init=3.0)(z1, z2).item()


def test_collapse_is_penalized() -> None:
    """A collapsed batch (every row equal) drives the log-det term far below a spread batch."""
    spread = _views(0, 32, 4)
    collapsed = torch.ones(32, 4, dtype=torch.float64)
    fresh = lambda: CorInfoMaxRegularizer(4, lambda_r=0.0, lambda_mu=0.0)  # noqa: E731  batch stats only
    assert fresh()(collapsed, collapsed).item() > fresh()(*spread).item() + 5.0


def test_low_precision_input_uses_float64_state() -> None:
    z1, z2 = _views(0, 16, 6, torch.float32)
    reg16, reg64 = CorInfoMaxRegularizer(6), CorInfoMaxRegularizer(6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = corinfomax_loss(z1, z2, reg16)
    assert out["loss"].dtype == torch.float32 and reg16.r1.dtype == torch.float64
    expected = corinfomax_loss(z1.double(), z2.double(), reg64)["loss"].item()
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert corinfomax_loss(z1.bfloat16(), z2.bfloat16(), CorInfoMaxRegularizer(6))["logdet"].dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"dim": 0}, "dim"),
        ({"dim": 4.0}, "dim"),
        ({"dim": 4, "eps": 0.0}, "eps"),
        ({"dim": 4, "lambda_r": 1.0}, "lambda_r"),
        ({"dim": 4, "lambda_mu": -0.1}, "lambda_mu"),
        ({"dim": 4, "r_init": 0.0}, "r_init"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        CorInfoMaxRegularizer(**kwargs)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda reg: reg(torch.randn(8, 3), torch.randn(8, 3)), "z1"),
        (lambda reg: reg(torch.randn(8, 4), torch.randn(7, 4)), "z2"),
        (lambda reg: reg(torch.randn(1, 4), torch.randn(1, 4)), "z1"),
        (lambda reg: corinfomax_loss(torch.randn(8, 4), torch.randn(8, 4), None), "regularizer"),
        (lambda reg: corinfomax_loss(torch.randn(8, 4), torch.randn(8, 4), reg, align_weight=-1.0), "align_weight"),
        (
            lambda reg: corinfomax_loss(torch.randn(8, 4), torch.randn(8, 4), reg, logdet_weight=float("nan")),
            "logdet_weight",
        ),
        (lambda reg: corinfomax_loss(torch.full((8, 4), float("nan")), torch.randn(8, 4), reg), "z1"),
    ],
)
def test_bad_input(call: object, name: str) -> None:
    reg = CorInfoMaxRegularizer(4)
    with pytest.raises(ValueError, match=f"^{name}:"):
        call(reg)  # type: ignore[operator]
    assert int(reg.steps) == 0  # a rejected call must not advance the state

"""EMA target: update math against hand computations, schedule endpoints, state round-trip."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from torch import nn

from covssl.models.ema import EMATarget, cosine_momentum


def make_online(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))


def perturb(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().double() for k, v in module.state_dict().items() if v.is_floating_point()}


@settings(max_examples=25, deadline=None)
@given(m=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_update_matches_hand_computation(m: float, seed: int) -> None:
    online = make_online(seed)
    target = EMATarget(online, momentum=m)
    perturb(online)
    online(torch.randn(8, 4))  # moves the online BN running statistics
    old_t = {k: v.detach().double().clone() for k, v in target.module.named_parameters()}
    online_p = {k: v.detach().double().clone() for k, v in online.named_parameters()}
    target.update(online)
    for name, p in target.module.named_parameters():
        expected = m * old_t[name] + (1 - m) * online_p[name]  # xi <- tau xi + (1 - tau) theta
        torch.testing.assert_close(p.double(), expected, rtol=1e-6, atol=1e-6)
    for (name, b), (_, ob) in zip(target.module.named_buffers(), online.named_buffers()):
        assert torch.equal(b, ob), name  # buffers are copied, not averaged


def test_repeated_updates_are_geometric() -> None:
    # With a fixed online theta: xi_n = theta + m^n (xi_0 - theta).
    online = make_online()
    target = EMATarget(online, momentum=0.9)
    xi0 = snapshot(target.module)
    perturb(online)
    theta = snapshot(online)
    for _ in range(5):
        target.update(online)
    for name, p in target.module.named_parameters():
        expected = theta[name] + 0.9**5 * (xi0[name] - theta[name])
        torch.testing.assert_close(p.double(), expected, rtol=1e-5, atol=1e-6)


def test_momentum_one_keeps_and_zero_copies() -> None:
    online = make_online()
    target = EMATarget(online, momentum=1.0)
    before = {k: v.clone() for k, v in target.module.named_parameters()}
    perturb(online)
    target.update(online)
    for name, p in target.module.named_parameters():
        assert torch.equal(p, before[name])
    target.update(online, momentum=0.0)
    for (name, p), (_, o) in zip(target.module.named_parameters(), online.named_parameters()):
        assert torch.equal(p, o), name
    assert target.momentum == 0.0  # the per-call momentum becomes the default


def test_target_is_frozen_and_independent() -> None:
    online = make_online()
    target = EMATarget(online)
    assert all(not p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in online.parameters())
    assert all(p.data_ptr() != o.data_ptr() for p, o in zip(target.parameters(), online.parameters()))
    x = torch.randn(5, 4, requires_grad=True)
    assert not target(x).requires_grad
    online_before = snapshot(online)
    target.update(online, momentum=0.5)
    assert all(torch.equal(v, online_before[k]) for k, v in snapshot(online).items())


def test_mode_follows_parent() -> None:
    parent = nn.Module()
    parent.target = EMATarget(make_online())
    parent.eval()
    assert not parent.target.module.training
    parent.train()
    assert parent.target.module.training


def test_state_dict_round_trip(tmp_path) -> None:
    online = make_online()
    target = EMATarget(online, momentum=0.99)
    perturb(online)
    target.update(online, momentum=0.7)
    state = target.state_dict()

    restored = EMATarget(make_online(seed=1), momentum=0.5)
    restored.load_state_dict(state)
    assert restored.momentum == 0.7
    for (k, v), (_, w) in zip(target.state_dict().items(), restored.state_dict().items()):
        assert torch.equal(v, w), k

    # Weight files are safetensors: the extra state must be a tensor.
    save_file(state, str(tmp_path / "ema.safetensors"))
    again = EMATarget(make_online(seed=2))
    again.load_state_dict(load_file(str(tmp_path / "ema.safetensors")))
    assert again.momentum == 0.7


def test_mismatched_online_raises() -> None:
    target = EMATarget(make_online())
    with pytest.raises(ValueError, match="online"):
        target.update(nn.Linear(4, 3))
    other = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="shape"):
        target.update(other)


@pytest.mark.parametrize("m", [-0.1, 1.5, float("nan"), True, "0.9"])
def test_bad_momentum_raises(m: object) -> None:
    with pytest.raises(ValueError, match="momentum"):
        EMATarget(make_online(), momentum=m)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="momentum"):
        EMATarget(make_online()).update(make_online(), momentum=m)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="module"):
        EMATarget("net")  # type: ignore[arg-type]


def test_cosine_momentum_endpoints() -> None:
    assert cosine_momentum(0, 1000) == pytest.approx(0.996, abs=1e-15)
    assert cosine_momentum(1000, 1000) == pytest.approx(1.0, abs=1e-15)
    assert cosine_momentum(500, 1000) == pytest.approx((0.996 + 1.0) / 2, abs=1e-15)
    assert cosine_momentum(5000, 1000) == pytest.approx(1.0, abs=1e-15)
    assert cosine_momentum(0, 10, base=0.9, final=0.99) == pytest.approx(0.9, abs=1e-15)
    assert cosine_momentum(10, 10, base=0.9, final=0.99) == pytest.approx(0.99, abs=1e-15)


@settings(max_examples=25, deadline=None)
@given(step=st.integers(0, 200), total=st.integers(1, 200), base=st.floats(0.0, 1.0))
def test_cosine_momentum_matches_byol_formula(step: int, total: int, base: float) -> None:
    k = min(step, total)
    expected = 1 - (1 - base) * (math.cos(math.pi * k / total) + 1) / 2  # BYOL, final = 1
    value = cosine_momentum(step, total, base=base)
    assert value == pytest.approx(expected, abs=1e-12)
    assert base - 1e-12 <= value <= 1.0 + 1e-12
    if step < total:
        assert cosine_momentum(step + 1, total, base=base) >= value - 1e-12


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(step=-1, total_steps=10), "step"),
        (dict(step=1.5, total_steps=10), "step"),
        (dict(step=0, total_steps=0), "total_steps"),
        (dict(step=0, total_steps=10, base=1.2), "base"),
        (dict(step=0, total_steps=10, final=-0.5), "final"),
    ],
)
def test_cosine_momentum_bad_args(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cosine_momentum(**kwargs)

"""train_step: the one training step (forward, objective, backward, scaler, clipping, non-finite policy, EMA)."""

from __future__ import annotations

import math

import pytest
import torch

from covssl.methods.model import build_model
from covssl.train.optim import build_optimizer
from covssl.train.step import NonFiniteLossError, StepParts, train_step


def _parts(config, **overrides) -> StepParts:
    torch.manual_seed(0)
    model = build_model(config)
    model.train()
    fields = dict(
        model=model, network=model, optimizer=build_optimizer(model, config.optim, 0.05),
        scaler=torch.amp.GradScaler("cpu", enabled=False), amp_dtype=None,
        term_keys=["loss", *(t.name for t in model.objective.term_specs)],
    )
    return StepParts(**{**fields, **overrides})


def _views(nan: bool = False):
    generator = torch.Generator().manual_seed(1)
    view1, view2 = torch.randn(16, 3, 16, 16, generator=generator), torch.randn(16, 3, 16, 16, generator=generator)
    return lambda: (view1 * math.nan if nan else view1, view2)


def _snapshot(parts: StepParts) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in parts.model.state_dict().items()}


def test_an_applied_step_changes_the_weights_and_logs_every_term(make_config) -> None:
    parts = _parts(make_config("vicreg"))
    before = _snapshot(parts)
    result = train_step(parts, _views())
    assert result.skipped == []
    assert set(result.values) == set(parts.term_keys) and all(math.isfinite(v) for v in result.values.values())
    assert result.z is not None and result.z.shape == (16, 32) and not result.z.requires_grad
    after = parts.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight"))


def test_skip_leaves_weights_buffers_and_optimizer_as_they_were(make_config) -> None:
    parts = _parts(make_config("corinfomax"), on_nonfinite="skip")  # running covariances: buffers a forward moves
    train_step(parts, _views())  # momentum buffers exist now
    before = _snapshot(parts)
    momentum = {id(p): s["momentum_buffer"].clone() for p, s in parts.optimizer.state.items() if "momentum_buffer" in s}
    result = train_step(parts, _views(nan=True), where="at step 1")
    assert result.skipped == ["embeddings (network output)"] or result.skipped
    after = parts.model.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    for p, s in parts.optimizer.state.items():
        if id(p) in momentum:
            assert torch.equal(s["momentum_buffer"], momentum[id(p)])
    assert all(p.grad is None for p in parts.model.parameters())


def test_stop_raises_naming_what_was_nonfinite_and_where(make_config) -> None:
    parts = _parts(make_config("vicreg"))
    before = _snapshot(parts)
    with pytest.raises(NonFiniteLossError, match=r"non-finite .* at step 7 \(epoch 2\)"):
        train_step(parts, _views(nan=True), where="at step 7 (epoch 2)")
    after = parts.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


def test_gradients_are_clipped_to_the_configured_norm(make_config, monkeypatch) -> None:
    parts = _parts(make_config("vicreg"), grad_clip=1e-3)
    norms = []
    real_step = parts.optimizer.step

    def recording_step(*args, **kwargs):
        grads = [p.grad for p in parts.model.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return real_step(*args, **kwargs)

    monkeypatch.setattr(parts.optimizer, "step", recording_step)
    train_step(parts, _views())
    assert norms and norms[0] == pytest.approx(1e-3, rel=1e-4)


def test_the_ema_target_moves_only_on_applied_steps(make_config) -> None:
    config = make_config("byol")
    parts = _parts(config, on_nonfinite="skip")
    target = parts.model.target
    assert target is not None
    first = {k: v.clone() for k, v in target.module.state_dict().items()}
    train_step(parts, _views(), ema_momentum=0.5)
    moved = target.module.state_dict()
    assert any(not torch.equal(first[k], moved[k]) for k in first if k.endswith("weight"))
    second = {k: v.clone() for k, v in moved.items()}
    train_step(parts, _views(nan=True), ema_momentum=0.5)
    assert all(torch.equal(second[k], v) for k, v in target.module.state_dict().items())

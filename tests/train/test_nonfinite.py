"""A NaN injected into one objective term mid-run: stop names the term, skip carries on.

The injection wraps one registered term so that it returns NaN from a chosen step on (the
step counter wraps the run's ``train_step``, the seam every step goes through).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable
import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from covssl.objectives import terms
from covssl.train import NonFiniteLossError, train
from covssl.train import epochs
from covssl.train.checkpoint import checkpoint_path, list_checkpoints, load_checkpoint_file, load_latest

from ._runs import STEPS_PER_EPOCH, logged_steps, tiny_config

TERM = "covariance_penalty"  # one of VICReg's three terms


def _count_steps(monkeypatch: pytest.MonkeyPatch, poison_views: Callable[[int], bool] = lambda step: False) -> list[int]:
    """Wrap the run's train_step (the seam): count its calls, and poison the views of chosen 0-based steps."""
    started = [0]
    real_step = epochs.train_step

    def counting_step(parts, make_views, *args, **kwargs):  # type: ignore[no-untyped-def]
        step = started[0]
        started[0] += 1
        if poison_views(step):
            def poisoned() -> tuple[torch.Tensor, torch.Tensor]:
                view1, view2 = make_views()
                return view1 * float("nan"), view2
            return real_step(parts, poisoned, *args, **kwargs)
        return real_step(parts, make_views, *args, **kwargs)

    monkeypatch.setattr(epochs, "train_step", counting_step)
    return started


def _inject_nan(monkeypatch: pytest.MonkeyPatch, steps: set[int] | range) -> None:
    """Make TERM return NaN during the given 0-based steps."""
    started = _count_steps(monkeypatch)
    original = terms.TERMS[TERM]

    @functools.wraps(original.fn)  # keeps the signature: the term's parameters stay known
    def poisoned(z: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        value = original.fn(z, *args, **kwargs)
        return value * float("nan") if started[0] - 1 in steps else value

    monkeypatch.setitem(terms.TERMS, TERM, replace(original, fn=poisoned))


def _parameters(state: dict) -> dict[str, torch.Tensor]:
    """Trainable tensors only: BatchNorm running statistics change in every forward pass."""
    return {k: v for k, v in state["model"].items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_stop_names_the_term_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_step = STEPS_PER_EPOCH + 2  # mid second epoch, after the first epoch's checkpoint
    _inject_nan(monkeypatch, range(bad_step, 10**6))
    config = tiny_config(tmp_path / "run", "train.epochs=3")
    with pytest.raises(NonFiniteLossError, match=f"non-finite .*{TERM} at step {bad_step} \\(epoch 1\\)") as error:
        train(config)
    assert "last good checkpoint is kept" in str(error.value)
    assert list_checkpoints(tmp_path / "run") == [checkpoint_path(tmp_path / "run", STEPS_PER_EPOCH)]
    state, _ = load_latest(tmp_path / "run")
    assert state["step"] == STEPS_PER_EPOCH
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values() if v.is_floating_point())
    assert logged_steps(tmp_path / "run") == list(range(1, bad_step + 1))  # rows of the good steps only
    # once the cause is fixed, the run resumes from that checkpoint and finishes
    monkeypatch.undo()
    assert train(config, resume=True).step == 3 * STEPS_PER_EPOCH


def test_skip_makes_no_update_on_a_nonfinite_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    _inject_nan(monkeypatch, range(STEPS_PER_EPOCH, 10**6))  # every step of the second epoch
    config = tiny_config(tmp_path / "run", "train.epochs=2", "train.on_nonfinite=skip")
    with caplog.at_level(logging.WARNING, logger="covssl.train.step"):
        assert train(config).step == 2 * STEPS_PER_EPOCH
    skipped = [r.getMessage() for r in caplog.records if "step skipped" in r.getMessage()]
    assert len(skipped) == STEPS_PER_EPOCH and all(TERM in m for m in skipped)
    before = _parameters(load_checkpoint_file(checkpoint_path(tmp_path / "run", STEPS_PER_EPOCH)))
    after = _parameters(load_checkpoint_file(checkpoint_path(tmp_path / "run", 2 * STEPS_PER_EPOCH)))
    for key in before:  # neither the gradient step nor weight decay touched the weights
        assert torch.equal(before[key], after[key]), key


def test_skip_recovers_after_a_transient_nan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_step = STEPS_PER_EPOCH + 1
    _inject_nan(monkeypatch, {bad_step})
    config = tiny_config(tmp_path / "run", "train.epochs=2", "train.on_nonfinite=skip")
    assert train(config).step == 2 * STEPS_PER_EPOCH
    with open(tmp_path / "run" / "steps.csv", newline="") as handle:
        rows = {int(r["step"]): r for r in csv.DictReader(handle)}  # keyed by 1-based step
    assert math.isnan(float(rows[bad_step + 1][TERM]))  # the skipped step's row shows the NaN
    assert all(math.isfinite(float(rows[s][TERM])) for s in rows if s != bad_step + 1)
    before = _parameters(load_checkpoint_file(checkpoint_path(tmp_path / "run", STEPS_PER_EPOCH)))
    after = _parameters(load_latest(tmp_path / "run")[0])
    assert all(bool(torch.isfinite(v).all()) for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the other steps did train


def _inject_nan_views(monkeypatch: pytest.MonkeyPatch, bad_step: int) -> None:
    """Make the network itself produce NaN at ``bad_step`` (0-based), as a diverging model would."""
    _count_steps(monkeypatch, poison_views=lambda step: step == bad_step)


def test_nan_from_the_network_stops_with_a_named_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _inject_nan_views(monkeypatch, STEPS_PER_EPOCH + 1)
    with pytest.raises(NonFiniteLossError, match=f"non-finite embeddings .*at step {STEPS_PER_EPOCH + 1}"):
        train(tiny_config(tmp_path / "run", "train.epochs=2"))


def test_nan_from_the_network_is_skipped_without_poisoning_batchnorm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_step = STEPS_PER_EPOCH + 1
    _inject_nan_views(monkeypatch, bad_step)
    assert train(tiny_config(tmp_path / "run", "train.epochs=2", "train.on_nonfinite=skip")).step == 2 * STEPS_PER_EPOCH
    state, _ = load_latest(tmp_path / "run")
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values() if v.is_floating_point())

"""Time budgets and train.precision=fastest: the plan's arithmetic, the calibration's side effects,
and a budgeted run end to end (with the planner's answers fixed, so no test depends on timing)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import covssl.train.budget as budget
import covssl.train.epochs as epochs
import covssl.train.precision as precision
from covssl.resolve import load_config
from covssl.methods.model import build_model
from covssl.train import train
from covssl.train.budget import in_run_evaluations, plan_epochs, recent_pace, revised_epochs
from covssl.train.precision import precision_candidates
from covssl.train.timing import time_training_step
from covssl.train.checkpoint import load_latest

seconds = st.floats(0.0, 1e4, allow_nan=False)


@given(
    budget_s=st.floats(1.0, 1e5), elapsed=seconds, epoch=st.floats(0.01, 1e3), knn=seconds, final=seconds,
    every=st.integers(0, 12), cap=st.integers(1, 300), done_share=st.floats(0.0, 1.0),
)
@settings(max_examples=300, deadline=None)
def test_the_plan_is_the_largest_epoch_count_that_fits(budget_s, elapsed, epoch, knn, final, every, cap,
                                                       done_share) -> None:
    done = int(done_share * cap)
    plan = plan_epochs(budget_s, elapsed, epoch, knn, final, every, cap, epochs_done=done, margin=0.05)

    def fits(e: int) -> bool:  # written out, not through predicted_run_seconds
        to_come = sum(1 for k in range(done + 1, e) if every and k % every == 0)  # kNNs after epochs done+1..e-1
        return elapsed + 1.05 * ((e - done) * epoch + to_come * knn + final) <= budget_s

    lowest = max(1, done)
    assert lowest <= plan.epochs <= cap
    fitting = [e for e in range(lowest, cap + 1) if fits(e)]
    assert plan.epochs == (max(fitting) if fitting else lowest)
    if fitting:
        assert elapsed + 1.05 * (plan.predicted_seconds - elapsed) <= budget_s * (1 + 1e-12) + 1e-9


@pytest.mark.parametrize("epochs, every", [(1, 1), (2, 1), (10, 3), (40, 10), (41, 10), (7, 0)])
def test_in_run_evaluations_count_the_loop_s_kNN_epochs(epochs: int, every: int) -> None:
    # the loop evaluates after epoch k (1-based) when k % every == 0 and k < epochs
    expected = sum(1 for k in range(1, epochs + 1) if every and k % every == 0 and k < epochs)
    assert in_run_evaluations(epochs, every) == expected


@given(
    budget_s=st.floats(10.0, 1e5), elapsed_share=st.floats(0.0, 1.0), epoch=st.floats(0.01, 1e3), knn=seconds,
    every=st.integers(0, 12), cap=st.integers(1, 300), done_share=st.floats(0.0, 1.0), current=st.integers(1, 300),
    slack=st.floats(0.0, 0.5),
)
@settings(max_examples=300, deadline=None)
def test_a_revised_plan_shrinks_at_once_and_grows_only_with_slack(budget_s, elapsed_share, epoch, knn, every, cap,
                                                                    done_share, current, slack) -> None:
    done = round(done_share * cap)
    current = max(current, done, 1)
    plan = plan_epochs(budget_s, elapsed_share * budget_s, epoch, knn, knn, every, cap, epochs_done=done)
    revised = revised_epochs(current, plan, slack)
    if plan.epochs <= current:
        assert revised == plan.epochs  # overshooting: take the smaller plan at once
        return
    assert current <= revised <= plan.epochs

    def fits_slower(e: int) -> bool:
        predicted = budget.predicted_run_seconds(e, plan.elapsed_seconds, epoch * (1 + slack), knn, knn, every, done)
        return plan.elapsed_seconds + (1 + budget.BUDGET_MARGIN) * (predicted - plan.elapsed_seconds) <= budget_s

    assert revised == current or fits_slower(revised)
    assert revised == plan.epochs or not fits_slower(revised + 1)


def test_a_revision_keeps_the_reserve_its_plan_was_made_with() -> None:
    # 1000 s to come, 100-s epochs, no kNN or final evaluation: 10 epochs fit with no reserve
    for margin in (0.0, 0.05, 0.2):
        plan = budget.plan_epochs(1000.0, 0.0, 100.0, 0.0, 0.0, 0, 60, margin=margin)
        assert plan.margin == margin
        largest = max(e for e in range(1, 61) if (1 + margin) * e * 100.0 * (1 + budget.GROWTH_SLACK) <= 1000.0)
        assert budget.revised_epochs(1, plan) == largest  # 9, 9, 7: grows only within the plan's reserve


def test_the_pace_is_the_mean_of_the_recent_epochs() -> None:
    assert recent_pace([100.0]) == 100.0
    assert recent_pace([300.0, 100.0, 110.0, 120.0]) == pytest.approx(110.0)  # the slow first epoch is forgotten
    assert recent_pace([300.0, 100.0], window=1) == 100.0
    with pytest.raises(ValueError, match="no epoch measured"):
        recent_pace([])


def test_a_budget_too_small_for_one_epoch_still_plans_one() -> None:
    plan = plan_epochs(10.0, elapsed_seconds=5.0, epoch_seconds=100.0, knn_seconds=1.0, final_seconds=1.0,
                       knn_every=0, max_epochs=50)
    assert plan.epochs == 1 and plan.predicted_seconds > plan.budget_seconds
    assert "1 epochs" in plan.describe()


@pytest.mark.parametrize(
    "name, value",
    [("budget_seconds", 0.0), ("budget_seconds", math.inf), ("epoch_seconds", -1.0), ("epoch_seconds", math.nan),
     ("elapsed_seconds", -1.0), ("knn_seconds", math.nan), ("final_seconds", -0.5), ("margin", 1.0),
     ("max_epochs", 0)],
)
def test_bad_plan_arguments_are_named(name: str, value: float) -> None:
    arguments = dict(budget_seconds=100.0, elapsed_seconds=0.0, epoch_seconds=1.0, knn_seconds=0.0,
                     final_seconds=0.0, knn_every=0, max_epochs=10)
    arguments[name] = value
    with pytest.raises(ValueError, match=name):
        plan_epochs(**arguments)


@pytest.mark.parametrize("native, expected", [(True, ["fp32", "bf16"]), (False, ["fp32"]), (None, ["fp32"])])
def test_fastest_times_bf16_only_where_the_cpu_has_it(monkeypatch, native, expected) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision_candidates("fastest", torch.device("cpu")) == expected
    assert precision_candidates("fastest", torch.device("cuda")) == ["bf16"]
    assert precision_candidates("bf16", torch.device("cpu")) == ["bf16"]


def test_autocast_dtype_refuses_an_unresolved_fastest() -> None:
    with pytest.raises(ValueError, match="fastest"):
        precision.autocast_dtype("fastest", torch.device("cpu"))


@pytest.mark.parametrize("value", ["0", "-5", "inf", "nan"])
def test_a_bad_time_budget_is_a_clear_error(value: str) -> None:
    with pytest.raises(ValueError, match="train.time_budget_minutes"):
        load_config(None, [f"train.time_budget_minutes={value}"])


def test_timing_a_step_leaves_the_model_and_the_random_streams_untouched(make_config) -> None:
    config = make_config("corinfomax")  # running covariances and BatchNorm statistics: state a forward moves
    model = build_model(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    generator = torch.Generator().manual_seed(0)

    def make_views():
        return torch.randn(16, 3, 16, 16, generator=generator), torch.randn(16, 3, 16, 16, generator=generator)

    took = time_training_step(model, make_views, None, torch.device("cpu"), config.optim, steps=2, warmup=1)
    assert took > 0
    assert torch.equal(torch.get_rng_state(), rng)
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert all(p.grad is None for p in model.parameters())


def test_fastest_trains_in_the_precision_that_timed_faster(make_config, monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    timed = []

    def fake_timing(model, make_views, amp_dtype, device, optim_config, **_):
        make_views()  # the views the calibration would train on can be drawn
        timed.append(amp_dtype)
        return {None: 0.2, torch.bfloat16: 0.1}[amp_dtype]

    monkeypatch.setattr(precision, "time_training_step", fake_timing)
    result = train(make_config("vicreg", "train.max_steps=2", "train.precision=fastest", "eval.baselines=false"))
    assert timed == [None, torch.bfloat16]
    assert result.precision == "bf16"
    state, _ = load_latest(result.run_dir)
    assert state["precision"] == "bf16"
    assert json.loads((result.run_dir / "results.json").read_text())["precision"] == "bf16"


def _fixed_planner(monkeypatch, answers: list[int]) -> list[dict]:
    """Replace plan_epochs in the run's epochs phase: the n-th plan answers answers[n] (the last one from then on).

    Returns the list of the calls' arguments, filled as the run plans.
    """
    calls: list[dict] = []

    def planner(**arguments):
        calls.append(arguments)
        planned = answers[min(len(calls), len(answers)) - 1]
        return budget.BudgetPlan(planned, arguments["epoch_seconds"], arguments["knn_seconds"],
                                 arguments["final_seconds"], arguments["elapsed_seconds"],
                                 arguments["budget_seconds"], arguments["knn_every"], arguments["epochs_done"])

    monkeypatch.setattr(epochs, "plan_epochs", planner)
    return calls


def _lrs(run_dir) -> list[float]:
    with open(run_dir / "steps.csv", newline="") as handle:
        return [float(row["lr"]) for row in csv.DictReader(handle)]


def test_a_budgeted_run_plans_then_replans_after_its_first_epoch(make_config, monkeypatch) -> None:
    calls = _fixed_planner(monkeypatch, [5, 3])
    # 4 steps per epoch; train.epochs=10 is the cap; warm-up 5 of 10 epochs keeps its half of the schedule
    config = make_config("vicreg", "train.epochs=10", "optim.warmup_epochs=5", "train.time_budget_minutes=2",
                         "optim.optimizer=sgd", "optim.lr=0.4")
    result = train(config)
    assert len(calls) == 3  # before the first step, after epochs 1 and 2 (not after the last)
    first, second, third = calls
    assert first["budget_seconds"] == 120.0 and first["max_epochs"] == 10
    assert first["epoch_seconds"] > 0 and first["knn_seconds"] > 0  # timed step x 4, the baseline kNN pass
    assert [c["epochs_done"] for c in calls] == [0, 1, 2]
    assert first["elapsed_seconds"] < second["elapsed_seconds"] < third["elapsed_seconds"]
    assert result.epochs == 3 and result.step == 12
    summary = json.loads((result.run_dir / "results.json").read_text())
    assert summary["epochs"] == 3 and summary["time_budget_minutes"] == 2
    assert summary["wall_seconds"] > 0
    lrs = _lrs(result.run_dir)
    assert len(lrs) == 12
    # the schedule of the re-planned run: warm-up 5 * 3 / 10 = 1.5 epochs = 6 steps, cosine to 0 at step 12
    peak = 0.4 * 16 / 256
    assert max(lrs) == pytest.approx(peak, rel=1e-6)
    assert lrs[-1] < 0.1 * peak
    state, _ = load_latest(result.run_dir)
    assert state["epochs"] == 3 and state["precision"] == "fp32"


@pytest.mark.parametrize(
    "answers, planned, plans",
    [([5, 3, 4], 4, 4), ([5, 4, 3], 3, 3), ([2, 4, 3, 2], 3, 3), ([4, 4, 2], 2, 3), ([3, 3, 5, 3], 3, 4)],
)
def test_every_epoch_the_plan_follows_the_pace(make_config, monkeypatch, answers, planned, plans) -> None:
    # the plan is revised after every epoch but the last, both ways (the timings here are tiny, so a
    # grown plan fits even at a slower pace). [4, 4, 2]: after epoch 2 the pace allows only the 2
    # epochs done: the run ends there. [3, 3, 5, 3]: grows to 5 after epoch 2, back to 3 after epoch 3.
    calls = _fixed_planner(monkeypatch, answers)
    config = make_config("vicreg", "train.epochs=10", "train.time_budget_minutes=2", "train.knn_every=2")
    result = train(config)
    assert result.epochs == planned and result.step == 4 * planned
    assert len(calls) == plans  # before the first step, then after every epoch but the last


def test_a_resumed_budgeted_run_finishes_its_plan_without_planning_again(tmp_path, make_config, monkeypatch) -> None:
    extra = ("train.epochs=10", "train.time_budget_minutes=2")
    _fixed_planner(monkeypatch, [4, 3])
    straight = train(make_config("vicreg", *extra, f"train.out_dir={tmp_path / 'straight'}"))
    calls = _fixed_planner(monkeypatch, [4, 3])
    train(make_config("vicreg", *extra, f"train.out_dir={tmp_path / 'resumed'}", "train.max_steps=6"))
    assert len(calls) == 2  # planned, and re-planned after epoch 1 (step 4)
    monkeypatch.setattr(epochs, "plan_epochs", lambda **_: pytest.fail("a resumed run planned again"))
    monkeypatch.setattr(precision, "time_training_step", lambda *a, **k: pytest.fail("a resumed run timed steps again"))
    resumed = train(make_config("vicreg", *extra, f"train.out_dir={tmp_path / 'resumed'}"), resume=True)
    assert resumed.epochs == straight.epochs == 3 and resumed.step == straight.step == 12
    a, _ = load_latest(tmp_path / "straight")
    b, _ = load_latest(tmp_path / "resumed")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_without_baselines_the_kNN_time_comes_from_timing_the_encoder(make_config, monkeypatch) -> None:
    calls = _fixed_planner(monkeypatch, [2, 2])
    encoded = []
    real = epochs.time_encoding

    def spy(encoder, images, transform, device, batch_size, total_images, **kw):
        encoded.append(total_images)
        return real(encoder, images, transform, device, batch_size, total_images, **kw)

    monkeypatch.setattr(epochs, "time_encoding", spy)
    result = train(make_config("vicreg", "train.epochs=10", "train.time_budget_minutes=1", "eval.baselines=false"))
    assert encoded == [128]  # 64 bank + 64 query images, timed once, before the plan
    assert calls[0]["knn_seconds"] > 0 and calls[0]["final_seconds"] == calls[0]["knn_seconds"]
    assert result.epochs == 2 and set(result.knn) == {"trained"}

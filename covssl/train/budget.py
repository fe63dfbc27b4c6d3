"""Fit a whole run into a wall-clock budget: how many epochs the measured times allow (pure planning).

``train.time_budget_minutes`` bounds the wall time of the whole run (data loading, baselines,
training, in-run kNN evaluations, final kNN and probe). What is chosen is the number of epochs,
not where to cut the schedule: the learning rate still warms up and decays to its final value
over the epochs that fit. With a fixed budget that is what works best (Li, Yumer & Ramanan,
2020, "Budgeted Training: Rethinking Deep Neural Network Training Under Resource Constraints",
ICLR 2020, arXiv 1905.04753: a schedule that anneals to its end within the budget beats a
longer one stopped early).

The plan is

    E = max{e <= train.epochs :  elapsed + (1 + margin) * T_to_come(e) <= budget},
    T_to_come(e) = (e - done) * t_epoch + n_knn(done, e) * t_knn + t_final

(at least max(1, done) epochs). The margin (5%) is a share of what is still predicted, not of the
budget: what is spent is measured, so the reserve for estimation error shrinks as the run nears its
end (a margin of 3% of the whole budget made a run give up its last epoch for a predicted 6-s
overshoot and end at 27.2 of 30 min). n_knn(done, e) is the in-run kNN evaluations still to come
(after every knn_every-th epoch but the last), t_knn the time of one kNN evaluation (encode the bank and the
queries, score) and t_final the final kNN plus probe. Before the first step t_epoch comes from
a few timed training steps of a *copy* of the model (the run's weights, BatchNorm statistics,
running covariances and RNG streams are untouched), and t_knn from the baseline kNN pass, or
from timing the encoder on a few evaluation batches. After every epoch, the mean of the last
three measured epochs (data loading, logging, checkpoint included) replaces the estimate and E is
planned again, with the epochs done and the time spent so far. E shrinks whenever the run would
overshoot, and grows only as far as would still fit at a 5% slower pace, so that a pace at the
edge of one more epoch does not redraw the schedule back and forth (runs on a VM whose pace
wandered by +-10% ended 3 minutes short of 30 when E could only shrink).
The warm-up keeps its share of the schedule (optim.warmup_epochs out of train.epochs), so the
schedule has the same shape at any budget; the re-plan moves only the learning rates still to
come, except for a slight change of the warm-up slope. The checkpoint stores the planned
epochs and the precision: a resumed run finishes that plan, it does not plan again.
The times come from :mod:`covssl.train.timing`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

BUDGET_MARGIN = 0.05  # reserve for estimation error, as a share of the time still predicted
PACE_WINDOW = 3  # the epoch time of a re-plan: the mean of the last epochs this many
GROWTH_SLACK = 0.05  # a plan grows only if it would still fit at a pace this much slower


@dataclass(frozen=True)
class BudgetPlan:
    """The epochs a budget allows and the estimates that decided it (all times in seconds)."""

    epochs: int
    epoch_seconds: float
    knn_seconds: float
    final_seconds: float
    elapsed_seconds: float
    budget_seconds: float
    knn_every: int
    epochs_done: int = 0
    margin: float = BUDGET_MARGIN  # the reserve it was planned with (see fits_budget)

    @property
    def predicted_seconds(self) -> float:
        """Predicted wall time of the whole run under this plan."""
        return predicted_run_seconds(
            self.epochs, self.elapsed_seconds, self.epoch_seconds, self.knn_seconds, self.final_seconds,
            self.knn_every, self.epochs_done,
        )

    def describe(self) -> str:
        return (
            f"time budget {self.budget_seconds / 60:.1f} min: {self.epochs} epochs "
            f"(epoch {self.epoch_seconds:.1f} s, kNN {self.knn_seconds:.1f} s, final evaluation "
            f"{self.final_seconds:.1f} s, {self.elapsed_seconds:.1f} s spent after {self.epochs_done} epochs; "
            f"predicted {self.predicted_seconds / 60:.1f} min in all)"
        )


def in_run_evaluations(epochs: int, knn_every: int) -> int:
    """kNN evaluations during a run of ``epochs`` epochs: after every ``knn_every``-th epoch but the last.

    Examples:
        >>> in_run_evaluations(40, 10), in_run_evaluations(41, 10), in_run_evaluations(5, 0)
        (3, 4, 0)
    """
    return (epochs - 1) // knn_every if knn_every > 0 else 0


def predicted_run_seconds(
    epochs: int, elapsed: float, epoch_seconds: float, knn_seconds: float, final_seconds: float, knn_every: int,
    epochs_done: int = 0,
) -> float:
    """elapsed + (E - done) * t_epoch + (kNNs still to come) * t_knn + t_final, for E >= done epochs.

    The kNNs still to come are those after epochs done + 1 .. E - 1 (the one after epoch ``done``,
    if any, is already in ``elapsed``).
    """
    to_come = in_run_evaluations(epochs, knn_every) - in_run_evaluations(epochs_done + 1, knn_every)
    return elapsed + (epochs - epochs_done) * epoch_seconds + max(0, to_come) * knn_seconds + final_seconds


def fits_budget(predicted: float, elapsed: float, budget: float, margin: float = BUDGET_MARGIN) -> bool:
    """Whether a run predicted to end at ``predicted`` seconds, ``elapsed`` of them spent, fits the budget.

    The reserve is ``margin`` times the time still to come: elapsed + (1 + margin)(predicted - elapsed) <= budget.

    Examples:
        >>> fits_budget(1750, 1500, 1800), fits_budget(1750, 0, 1800)
        (True, False)
    """
    return elapsed + (1 + margin) * (predicted - elapsed) <= budget


def plan_epochs(
    budget_seconds: float,
    elapsed_seconds: float,
    epoch_seconds: float,
    knn_seconds: float,
    final_seconds: float,
    knn_every: int,
    max_epochs: int,
    epochs_done: int = 0,
    margin: float = BUDGET_MARGIN,
) -> BudgetPlan:
    """The largest number of epochs E (max(1, done) <= E <= max_epochs) whose predicted run fits the budget.

    Args:
        budget_seconds: wall time allowed for the whole run, > 0.
        elapsed_seconds: already spent (data loading, calibration, baselines, the epochs done), >= 0.
        epoch_seconds: one training epoch, > 0.
        knn_seconds: one in-run kNN evaluation, >= 0.
        final_seconds: the final evaluation (kNN and probe), >= 0.
        knn_every: epochs between in-run kNN evaluations (0: none).
        max_epochs: the configured number of epochs, an upper bound (>= 1).
        epochs_done: epochs already trained (0 before the first step).
        margin: reserve for estimation error, a share of the predicted time still to come, in [0, 1).

    Returns:
        The plan; ``epochs`` is the smallest allowed when none fits (the run then overshoots,
        and the caller warns).

    Examples:
        >>> plan_epochs(1800, 60, 100, 20, 30, knn_every=10, max_epochs=100).epochs
        16
        >>> plan_epochs(1800, 60, 100, 20, 30, knn_every=10, max_epochs=12).epochs
        12
        >>> plan_epochs(1800, 1460, 100, 20, 30, knn_every=10, max_epochs=100, epochs_done=12).epochs
        14
    """
    for name, value in (("budget_seconds", budget_seconds), ("epoch_seconds", epoch_seconds)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    for name, value in (("elapsed_seconds", elapsed_seconds), ("knn_seconds", knn_seconds),
                        ("final_seconds", final_seconds)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin: expected a number in [0, 1), got {margin!r}")
    if max_epochs < 1:
        raise ValueError(f"max_epochs: expected an integer >= 1, got {max_epochs!r}")
    if not 0 <= epochs_done <= max_epochs:
        raise ValueError(f"epochs_done: expected an integer in [0, max_epochs={max_epochs}], got {epochs_done!r}")
    lowest = max(1, epochs_done)
    epochs = lowest
    # the predicted time grows with E, so the first E that fits from the top is the largest
    for e in range(max_epochs, lowest - 1, -1):
        predicted = predicted_run_seconds(
            e, elapsed_seconds, epoch_seconds, knn_seconds, final_seconds, knn_every, epochs_done
        )
        if fits_budget(predicted, elapsed_seconds, budget_seconds, margin):
            epochs = e
            break
    return BudgetPlan(epochs, epoch_seconds, knn_seconds, final_seconds, elapsed_seconds, budget_seconds,
                      knn_every, epochs_done, margin)


def recent_pace(epoch_seconds: list[float], window: int = PACE_WINDOW) -> float:
    """The time of the epochs to come: the mean of the last ``window`` measured epochs.

    A VM's pace drifts by tens of percent over a run; the recent epochs predict the next ones
    better than the mean since the start, which remembers a slow patch long after it ended.

    Examples:
        >>> recent_pace([120.0, 90.0, 100.0, 110.0])
        100.0
    """
    if not epoch_seconds:
        raise ValueError("recent_pace: no epoch measured yet")
    if window < 1:
        raise ValueError(f"window: expected an integer >= 1, got {window!r}")
    return statistics.fmean(epoch_seconds[-window:])


def revised_epochs(current: int, plan: BudgetPlan, slack: float = GROWTH_SLACK) -> int:
    """The epochs to train after a re-plan that answered ``plan`` while ``current`` were planned.

    Fewer whenever the plan says so (the run would overshoot its budget); more only as many as
    would still fit at a pace ``slack`` slower than the measured one, so that a pace hovering at
    the edge of one more epoch does not redraw the learning-rate schedule back and forth.

    Examples:
        >>> plan = plan_epochs(1800, 1036, 100, 0, 0, knn_every=0, max_epochs=60, epochs_done=10)
        >>> plan.epochs, revised_epochs(12, plan), revised_epochs(20, plan)
        (17, 16, 17)
    """
    if plan.epochs <= current:
        return plan.epochs
    slower = plan.epoch_seconds * (1 + slack)
    grown = current
    for e in range(current + 1, plan.epochs + 1):
        predicted = predicted_run_seconds(e, plan.elapsed_seconds, slower, plan.knn_seconds, plan.final_seconds,
                                          plan.knn_every, plan.epochs_done)
        if not fits_budget(predicted, plan.elapsed_seconds, plan.budget_seconds, plan.margin):
            break
        grown = e
    return grown

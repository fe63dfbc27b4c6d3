"""Kill -9 anywhere, then --resume: the run ends with exactly the weights of an uninterrupted run.

The loop checkpoints at every epoch end (and on SIGINT/SIGTERM). After a SIGKILL the resume
restarts from the last epoch checkpoint, replays the lost steps, and must still reproduce the
uninterrupted run bit for bit on a CPU: same data order, augmentation RNG, optimizer state.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from covssl.cli import app
from covssl.train import train
from covssl.train.checkpoint import checksum_path, list_checkpoints, load_checkpoint_file

from ._runs import (
    EPOCHS,
    STEPS_PER_EPOCH,
    assert_same_weights,
    child_log,
    final_weights,
    logged_steps,
    start_child,
    tiny_args,
    tiny_config,
)

TOTAL = EPOCHS * STEPS_PER_EPOCH
runner = CliRunner()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run's final weights."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert train(tiny_config(run_dir)).step == TOTAL
    return final_weights(run_dir)


def _resume(run_dir: Path) -> None:
    result = runner.invoke(app, ["train", *tiny_args(run_dir), "--resume"])
    assert result.exit_code == 0, result.output
    assert logged_steps(run_dir) == list(range(1, TOTAL + 1))  # no step lost or logged twice


def test_sigkill_at_a_random_step_then_resume_is_exact(tmp_path: Path, reference: dict) -> None:
    target = random.Random().randint(2, TOTAL - 8)  # leave the child time to be killed mid-run
    run_dir = tmp_path / "run"
    child = start_child("plain", 0, run_dir)
    deadline = time.monotonic() + 120
    try:
        while (logged_steps(run_dir) or [0])[-1] < target:
            assert child.poll() is None, f"the run ended before step {target}:\n{child_log(run_dir, 'plain')}"
            assert time.monotonic() < deadline, f"step {target} not reached in 120 s"
            time.sleep(0.002)
    finally:
        child.kill()  # SIGKILL: no handler, no cleanup, no final checkpoint
        child.wait()
    assert child.returncode == -signal.SIGKILL
    killed_at = logged_steps(run_dir)[-1]
    assert killed_at < TOTAL, f"target {target}: the child finished before the kill"
    _resume(run_dir)
    assert_same_weights(final_weights(run_dir), reference)


def test_sigkill_while_a_checkpoint_is_written_then_resume_is_exact(tmp_path: Path, reference: dict) -> None:
    run_dir = tmp_path / "run"
    child = start_child("sigkill-in-save", 2 * STEPS_PER_EPOCH, run_dir)
    assert child.wait(timeout=120) == -signal.SIGKILL, child_log(run_dir, "sigkill-in-save")
    # the kill left half a save behind: a temporary file and an orphan sidecar, no checkpoint-8
    names = sorted(p.name for p in run_dir.iterdir())
    assert [p.name for p in list_checkpoints(run_dir)] == ["checkpoint-00000004.pt"]
    assert any(n.startswith(".checkpoint-00000008.pt.tmp-") for n in names), names
    assert "checkpoint-00000008.pt.sha256" in names
    _resume(run_dir)
    assert_same_weights(final_weights(run_dir), reference)
    leftovers = [p.name for p in run_dir.iterdir() if p.name.startswith(".") or p.name == "checkpoint-00000008.pt.sha256"]
    assert leftovers == []  # the next save cleaned up after the crash


def test_sigterm_checkpoints_mid_epoch_and_resume_is_exact(tmp_path: Path, reference: dict) -> None:
    run_dir = tmp_path / "run"
    stop_step = STEPS_PER_EPOCH + 2  # in the middle of the second epoch
    child = start_child("sigterm", stop_step, run_dir)
    assert child.wait(timeout=120) != 0
    output = child_log(run_dir, "sigterm")
    assert f"stopped by signal {int(signal.SIGTERM)} at step {stop_step}" in output
    assert "Traceback" not in output
    newest = list_checkpoints(run_dir)[-1]
    assert newest.name == f"checkpoint-{stop_step:08d}.pt" and checksum_path(newest).is_file()
    state = load_checkpoint_file(newest)
    assert (state["step"], state["epoch"], state["position"]) == (stop_step, 1, 2)
    assert logged_steps(run_dir) == list(range(1, stop_step + 1))
    _resume(run_dir)
    assert_same_weights(final_weights(run_dir), reference)

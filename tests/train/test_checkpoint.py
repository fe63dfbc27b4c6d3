"""Checkpoints: checksummed atomic writes, fallback over damaged files, no code from a pickle.

Every damaged-file case is built by hand (truncation, flipped bytes, a lost or wrong sidecar)
and every malicious file is shown to be live -- it runs its payload under a plain
``torch.load(weights_only=False)`` -- before covssl is shown to refuse it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from pathlib import Path
from typing import Callable

import pytest
import torch
from typer.testing import CliRunner

from covssl.cli import app
from covssl.train import train
from covssl.train.checkpoint import (
    FORMAT,
    CheckpointError,
    checkpoint_path,
    checksum_path,
    list_checkpoints,
    load_checkpoint_file,
    load_latest,
    save_checkpoint,
)

from ._runs import STEPS_PER_EPOCH, assert_same_weights, tiny_config


def _state(step: int) -> dict:
    generator = torch.Generator().manual_seed(step)
    return {"model": {"w": torch.randn(64, 64, generator=generator)}, "step": step, "epoch": 0}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sign(path: Path) -> None:
    """Write a valid sidecar, as an attacker who controls the folder could."""
    checksum_path(path).write_text(f"{_sha256(path)}  {path.name}\n")


def test_save_writes_a_sha256sum_sidecar_and_keeps_the_last_k(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4):
        save_checkpoint(_state(step), tmp_path, step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000003.pt", "checkpoint-00000004.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-00000003.pt", "checkpoint-00000003.pt.sha256", "checkpoint-00000004.pt", "checkpoint-00000004.pt.sha256",
    ]
    newest = checkpoint_path(tmp_path, 4)
    assert checksum_path(newest).read_text() == f"{_sha256(newest)}  {newest.name}\n"  # `sha256sum -c` format
    state = load_checkpoint_file(newest)
    assert state["format"] == FORMAT and state["step"] == 4
    assert torch.equal(state["model"]["w"], _state(4)["model"]["w"])


def test_save_removes_what_a_crash_left_behind(tmp_path: Path) -> None:
    save_checkpoint(_state(1), tmp_path, 1, keep=2)
    (tmp_path / ".checkpoint-00000002.pt.tmp-999").write_bytes(b"half a checkpoint")
    (tmp_path / ".checkpoint-00000002.pt.sha256.tmp-999").write_bytes(b"")
    (tmp_path / "checkpoint-00000002.pt.sha256").write_text("0" * 64)
    (tmp_path / "notes.txt").write_text("the user's own file")
    save_checkpoint(_state(3), tmp_path, 3, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-00000001.pt", "checkpoint-00000001.pt.sha256", "checkpoint-00000003.pt",
        "checkpoint-00000003.pt.sha256", "notes.txt",
    ]


def test_a_failed_write_leaves_the_previous_checkpoints_and_no_debris(tmp_path: Path) -> None:
    save_checkpoint(_state(1), tmp_path, 1, keep=2)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(Exception):
        save_checkpoint({**_state(2), "callback": lambda: None}, tmp_path, 2, keep=2)  # torch.save cannot pickle it
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _delete_sidecar(path: Path) -> None:
    checksum_path(path).unlink()


def _wrong_sidecar(path: Path) -> None:
    checksum_path(path).write_text("0" * 64 + f"  {path.name}\n")


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096))
    _sign(path)  # even with a matching checksum, the content must still be rejected


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "sha256 mismatch"),
    "flipped byte": (_flip_middle_byte, "sha256 mismatch"),
    "empty file": (_empty, "sha256 mismatch"),
    "sidecar deleted": (_delete_sidecar, "no checksum file"),
    "sidecar wrong": (_wrong_sidecar, "sha256 mismatch"),
    "random bytes, signed": (_garbage, "cannot be read, the file is truncated, corrupt or not written by torch.save"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, damage: str, caplog) -> None:
    for step in (1, 2):
        save_checkpoint(_state(step), tmp_path, step, keep=3)
    harm, reason = DAMAGE[damage]
    harm(checkpoint_path(tmp_path, 2))
    with pytest.raises(CheckpointError, match=reason):
        load_checkpoint_file(checkpoint_path(tmp_path, 2))
    with caplog.at_level(logging.WARNING, logger="covssl.train.checkpoint"):
        state, path = load_latest(tmp_path)
    assert path == checkpoint_path(tmp_path, 1) and state["step"] == 1
    said = caplog.text
    assert "checkpoint-00000002.pt" in said and reason in said and "falling back" in said
    assert "using" in said and "checkpoint-00000001.pt" in said


def test_silent_corruption_inside_a_tensor_is_caught_by_the_checksum(tmp_path: Path) -> None:
    marker = torch.arange(4096, dtype=torch.int32)  # bytes easy to find in the file
    path = checkpoint_path(tmp_path, 1)
    save_checkpoint({"model": {"w": marker}, "step": 1}, tmp_path, 1, keep=1)
    data = bytearray(path.read_bytes())
    at = data.find(marker[1000:1004].numpy().tobytes())
    assert at > 0
    data[at] ^= 0x01  # 1000 -> 1001: still a perfectly loadable file
    path.write_bytes(bytes(data))
    loaded = torch.load(path, weights_only=True)  # torch alone does not notice
    assert int(loaded["model"]["w"][1000]) == 1001
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_checkpoint_file(path)


def test_no_checkpoint_is_none_and_only_bad_ones_is_an_error(tmp_path: Path) -> None:
    assert load_latest(tmp_path) is None
    assert load_latest(tmp_path / "missing") is None
    for step in (1, 2):
        save_checkpoint(_state(step), tmp_path, step, keep=3)
    _truncate(checkpoint_path(tmp_path, 1))
    _delete_sidecar(checkpoint_path(tmp_path, 2))
    with pytest.raises(CheckpointError, match="no usable checkpoint") as error:
        load_latest(tmp_path)
    assert "checkpoint-00000001.pt: sha256 mismatch" in str(error.value)
    assert "checkpoint-00000002.pt: no checksum file" in str(error.value)


def test_resume_over_a_damaged_checkpoint_is_exact_and_says_so(tmp_path: Path, caplog) -> None:
    run_dir = tmp_path / "run"
    config = tiny_config(run_dir, "train.epochs=3", "train.keep_checkpoints=3")
    train(config)
    newest = checkpoint_path(run_dir, 3 * STEPS_PER_EPOCH)
    straight = load_checkpoint_file(newest)["model"]
    _truncate(newest)
    with caplog.at_level(logging.INFO):
        assert train(config, resume=True).step == 3 * STEPS_PER_EPOCH
    assert f"{newest}: sha256 mismatch" in caplog.text and "falling back" in caplog.text
    assert f"resumed from {checkpoint_path(run_dir, 2 * STEPS_PER_EPOCH)} at step {2 * STEPS_PER_EPOCH}" in caplog.text
    assert_same_weights(load_checkpoint_file(newest)["model"], straight)  # the lost epoch, replayed exactly


def test_resume_refuses_to_start_over_when_every_checkpoint_is_damaged(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = tiny_config(run_dir, "train.epochs=1")
    train(config)
    (only,) = list_checkpoints(run_dir)
    _flip_middle_byte(only)
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        train(config, resume=True)
    assert list_checkpoints(run_dir) == [only]  # the damaged file is left for the user to inspect


# ----------------------------------------------------------------------------------------------
# Malicious pickles: each payload would leave a marker file if it ever ran.


def plant_marker(path: str) -> None:
    """The payload: what an attacker's code could do (here, harmlessly, create a file)."""
    Path(path).write_text("this code ran while loading a checkpoint")


class _CallsFunction:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # the pickle protocol runs the returned callable on load
        return (plant_marker, (str(self.marker),))


class _CallsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsExec:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"with open({str(self.marker)!r}, 'w') as f: f.write('pwned')",))


def _torch_save(payload: object, path: Path) -> None:
    torch.save({"model": {"w": payload}, "step": 1, "format": FORMAT}, path)


def _torch_save_legacy(payload: object, path: Path) -> None:
    # torch's pre-1.6 format (not a zip), which torch.load still reads
    torch.save({"model": {"w": payload}, "step": 1, "format": FORMAT}, path, _use_new_zipfile_serialization=False)


def _plain_pickle(payload: object, path: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    with open(path, "wb") as handle:
        pickle.dump({"model": {"w": payload}, "step": 1, "format": FORMAT}, handle, protocol=protocol)


def _plain_pickle_v2(payload: object, path: Path) -> None:
    _plain_pickle(payload, path, protocol=2)  # the opcodes torch's restricted unpickler understands


def _unguarded_load(path: Path) -> None:
    """What a careless loader does: torch.load without weights_only, or pickle.load."""
    try:
        torch.load(path, weights_only=False)
    except RuntimeError:  # a plain pickle has no torch header
        with open(path, "rb") as handle:
            pickle.load(handle)


PAYLOADS = {"own function": _CallsFunction, "os.system": _CallsSystem, "builtins.exec": _CallsExec}
# writer -> what covssl says: a pickle torch's restricted unpickler can parse is refused by name of
# its forbidden callable; a newer-protocol plain pickle is rejected at its first unknown opcode.
WRITERS = {
    "torch.save": (_torch_save, "refused: it holds pickled Python objects"),
    "torch.save legacy": (_torch_save_legacy, "refused: it holds pickled Python objects"),
    "plain pickle v2": (_plain_pickle_v2, "refused: it holds pickled Python objects"),
    "plain pickle v4": (_plain_pickle, "cannot be read, the file is truncated, corrupt or not written by torch.save"),
}


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_malicious_pickle_is_refused_without_running(tmp_path: Path, payload: str, writer: str, caplog) -> None:
    # the crafted file is live: an unguarded load runs the payload
    probe, probe_marker = tmp_path / "probe.pt", tmp_path / "probe-ran"
    write, message = WRITERS[writer]
    write(PAYLOADS[payload](probe_marker), probe)
    _unguarded_load(probe)
    assert probe_marker.exists()

    run_dir, marker = tmp_path / "run", tmp_path / "ran"
    run_dir.mkdir()
    save_checkpoint(_state(1), run_dir, 1, keep=3)
    evil = checkpoint_path(run_dir, 2)
    write(PAYLOADS[payload](marker), evil)
    _sign(evil)  # a forged checksum does not help: weights_only is the gate
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint_file(evil)
    with caplog.at_level(logging.WARNING, logger="covssl.train.checkpoint"):
        state, path = load_latest(run_dir)
    assert path == checkpoint_path(run_dir, 1) and message in caplog.text
    assert not marker.exists()


def test_cli_eval_refuses_a_malicious_checkpoint(tmp_path: Path) -> None:
    run_dir, marker = tmp_path / "run", tmp_path / "ran"
    config = tiny_config(run_dir, "train.epochs=1")
    train(config)
    (good,) = list_checkpoints(run_dir)
    _torch_save(_CallsFunction(marker), good)
    _sign(good)
    result = CliRunner().invoke(app, ["eval", str(good)])
    assert result.exit_code == 2
    assert "refused" in result.output and "Traceback" not in result.output
    assert not marker.exists()

"""A checkpoint that passes its checksum but does not fit the model: skipped, or a clear error."""

import pytest
import torch

from covssl.train.checkpoint import CheckpointError, check_fits, load_latest, save_checkpoint


def _accept(model):
    reference = model.state_dict()
    return lambda state, path: check_fits(state, reference, path)


def test_forged_newest_falls_back_to_the_previous_good_one(tmp_path):
    model = torch.nn.Linear(3, 2)
    save_checkpoint({"model": model.state_dict(), "step": 1}, tmp_path, 1, keep=3)
    save_checkpoint({"model": {"other.weight": torch.zeros(2)}, "step": 2}, tmp_path, 2, keep=3)
    state, path = load_latest(tmp_path, accept=_accept(model))
    assert state["step"] == 1 and path.name == "checkpoint-00000001.pt"


def test_none_fits_names_the_file(tmp_path):
    model = torch.nn.Linear(3, 2)
    save_checkpoint({"model": torch.nn.Linear(5, 2).state_dict(), "step": 4}, tmp_path, 4, keep=3)
    with pytest.raises(CheckpointError, match=r"checkpoint-00000004\.pt: weight has shape \(2, 5\)"):
        load_latest(tmp_path, accept=_accept(model))


def test_without_accept_behaviour_is_unchanged(tmp_path):
    save_checkpoint({"model": {"x": torch.zeros(1)}, "step": 3}, tmp_path, 3, keep=3)
    assert load_latest(tmp_path)[0]["step"] == 3

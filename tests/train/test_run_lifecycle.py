"""The run folder's lifecycle as a new user meets it: failed starts, resume flags, atomic records."""

from __future__ import annotations

import os

import pytest

from covssl.train import train
from covssl.train.run_dir import prepare_run_dir


def test_a_run_that_failed_before_its_first_step_does_not_block_the_corrected_rerun(make_config, tmp_path) -> None:
    with pytest.raises((ValueError, FileNotFoundError)):
        train(make_config("vicreg", "data.dataset=imagefolder", f"data.root={tmp_path / 'typo'}", "train.max_steps=1"))
    config = make_config("vicreg", "train.max_steps=1")
    assert os.path.isfile(os.path.join(config.train.out_dir, "config.yaml"))  # the failed start's leftovers
    result = train(config)  # no --overwrite needed: the folder held no checkpoint
    assert result.step == 1


def test_resume_without_anything_to_resume_is_an_error(make_config, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"--resume: nothing to resume, .* does not exist"):
        train(make_config("vicreg", f"train.out_dir={tmp_path / 'nowhere'}"), resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no checkpoint"):
        train(make_config("vicreg", f"train.out_dir={tmp_path / 'empty'}"), resume=True)
    assert not (tmp_path / "nowhere").exists()


def test_resume_and_overwrite_together_are_an_error(make_config) -> None:
    config = make_config("vicreg", "train.max_steps=1")
    train(config)
    with pytest.raises(ValueError, match="--resume and --overwrite contradict"):
        train(config, resume=True, overwrite=True)


def test_a_run_folder_with_a_checkpoint_is_still_protected(make_config) -> None:
    config = make_config("vicreg", "train.max_steps=1")
    train(config)
    with pytest.raises(ValueError, match="already holds a run"):
        train(config)


def test_the_record_is_written_atomically(make_config, monkeypatch) -> None:
    config = make_config("vicreg", "train.max_steps=1")
    train(config)
    run_dir = prepare_run_dir(config, resume=True, overwrite=False).resolve()
    before = (run_dir / "config.yaml").read_text()

    def killed(src, dst):  # the process dies between writing the temporary file and the rename
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(ValueError, match="cannot write to"):
        prepare_run_dir(config, resume=True, overwrite=False)
    assert (run_dir / "config.yaml").read_text() == before
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]

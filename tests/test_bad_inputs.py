"""Every user-facing input answered clearly: a table of bad inputs and the exact error each gets.

Each row is (input -> exception type + a fragment of its message). The fragments name the
offending key, file or argument and what was expected, so the table doubles as documentation
of what a user sees. A second table checks that the command line turns the same errors into
exit code 2 with a one-line message and no traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from covssl.cli import app
from covssl.resolve import load_config
from covssl.objectives import Objective, covariance_penalty
from covssl.train import train
from covssl.train.checkpoint import CheckpointError, checksum_path, load_checkpoint_file, load_latest, save_checkpoint
from covssl.train.restore import load_run
from covssl.train.run_dir import prepare_run_dir

from tests.train._runs import TINY, tiny_config

# ------------------------------------------------------------------------------------------------
# builders


def _png(path: Path, size: tuple[int, int] = (8, 8), seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _tree(root: Path, per_class: int = 4, splits: tuple[str, ...] = ("train", "test")) -> Path:
    """root/<split>/<class>/<i>.png, two classes of 8x8 images."""
    for split in splits:
        for cls in ("cat", "dog"):
            for i in range(per_class):
                _png(root / split / cls / f"{i}.png", seed=i)
    return root


def _train_on_folder(tmp: Path, root: Path, *extra: str) -> None:
    overrides = [*TINY, "data.dataset=imagefolder", f"data.root={root}", f"data.cache_dir={tmp / 'cache'}",
                 "train.batch_size=4", "data.max_train_images=null", "data.max_eval_images=null",
                 f"train.out_dir={tmp / 'run'}", *extra]
    train(load_config(None, overrides))


def _config(*overrides: str) -> Callable[[Path], object]:
    return lambda tmp: load_config(None, list(overrides))


def _yaml_file(text: str) -> Callable[[Path], object]:
    def make(tmp: Path) -> object:
        (tmp / "c.yaml").write_text(text)
        return load_config(tmp / "c.yaml")
    return make


def _folder(change: Callable[[Path], None], *extra: str) -> Callable[[Path], object]:
    """Train on a valid tree after ``change(root)`` breaks it."""
    def make(tmp: Path) -> object:
        root = _tree(tmp / "images")
        change(root)
        return _train_on_folder(tmp, root, *extra)
    return make


def _corrupt_jpeg(root: Path) -> None:
    path = root / "train" / "cat" / "x.jpg"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:40])  # header only: the decoder runs out of data


def _text_as_png(root: Path) -> None:
    (root / "train" / "dog" / "notes.png").write_text("not an image")


def _empty_class(root: Path) -> None:
    (root / "train" / "bird").mkdir()


def _other_size(root: Path) -> None:
    _png(root / "train" / "dog" / "big.png", size=(16, 16))


def _no_test_split(root: Path) -> None:
    for path in sorted((root / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / "test").rmdir()


def _no_classes(root: Path) -> None:
    for path in sorted((root / "train").rglob("*.png")):
        path.replace(root / "train" / f"{path.parent.name}-{path.name}")
    for cls in ("cat", "dog"):
        (root / "train" / cls).rmdir()


def _run_folder(tmp: Path, *extra: str) -> Path:
    config = tiny_config(tmp / "run", *extra)
    run_dir = prepare_run_dir(config, resume=False, overwrite=False)
    save_checkpoint({"model": {}, "step": 4}, run_dir, 4, keep=2)
    return run_dir


def _prepare(out_dir: Callable[[Path], Path], resume: bool = False, *extra: str) -> Callable[[Path], object]:
    return lambda tmp: prepare_run_dir(tiny_config(out_dir(tmp), *extra), resume=resume, overwrite=False)


def _regular_file(tmp: Path) -> Path:
    (tmp / "file").write_text("a file, not a folder")
    return tmp / "file"


def _objective(z1: object, z2: object, spec: str = "mse:25 + variance_hinge:25 + covariance_penalty:1",
               **predictions: object) -> Callable[[Path], object]:
    return lambda tmp: Objective.from_spec(spec, dim=8)(z1, z2, **predictions)


def _checkpoint(make: Callable[[Path], None]) -> Callable[[Path], object]:
    def load(tmp: Path) -> object:
        path = tmp / "checkpoint-00000001.pt"
        make(path)
        return load_checkpoint_file(path)
    return load


def _signed(write: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        write(path)
        import hashlib
        checksum_path(path).write_text(hashlib.sha256(path.read_bytes()).hexdigest() + f"  {path.name}\n")
    return make


def _all_damaged(tmp: Path) -> object:
    save_checkpoint({"model": {}, "step": 1}, tmp, 1, keep=2)
    checksum_path(tmp / "checkpoint-00000001.pt").unlink()
    return load_latest(tmp)


Z = torch.randn(8, 8)
NAN = Z.clone()
NAN[3, 2] = float("nan")


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], object]
    error: type[BaseException]
    fragment: str


CASES: dict[str, Case] = {
    # --- configuration values (load_config: layers merged, then validate())
    "negative lr": Case(_config("optim.lr=-1"), ValueError, "optim.lr: expected a finite number > 0, got -1.0"),
    "infinite lr": Case(_config("optim.lr=inf"), ValueError, "optim.lr: expected a finite number > 0, got inf"),
    "batch of one": Case(_config("train.batch_size=1"), ValueError, "train.batch_size: expected at least 2 (covariance needs 2 samples), got 1"),
    "batch larger than the subset": Case(_config("data.max_train_images=8", "train.batch_size=16"), ValueError,
                                         "train.batch_size: 16 is larger than the training set (data.max_train_images=8)"),
    "unknown method": Case(_config("method.name=dino"), ValueError, "method.name: unknown method 'dino'; choose one of:"),
    "unknown regularizer": Case(_config("method.objective=mse:25 + whitening:1"), ValueError,
                                "method.objective: unknown objective term 'whitening'; choose one of:"),
    "spec: bad weight": Case(_config("method.objective=mse:abc"), ValueError,
                             "method.objective: weight of 'mse': expected a number > 0, got 'abc'"),
    "spec: negative weight": Case(_config("method.objective=mse:-1"), ValueError,
                                  "method.objective: weight of 'mse': expected a finite number > 0, got '-1'"),
    "spec: duplicated term": Case(_config("method.objective=mse:25 + mse:1"), ValueError, "each term may appear once, got 'mse' more than once"),
    "spec: unknown parameter": Case(_config("method.objective=coding_rate(epsilon=0.5)"), ValueError,
                                    "parameter 'epsilon' of term 'coding_rate': unknown; its parameters are:"),
    "spec: unknown option": Case(_config("method.objective=mse; whiten"), ValueError,
                                 "objective spec option: expected one of ('normalize',), got 'whiten'"),
    "spec: two alignment terms": Case(_config("method.objective=mse + cosine"), ValueError,
                                      "terms: expected at most one alignment term, got ['mse', 'cosine']"),
    "predictor term without predictor": Case(_config("method.objective=negative_cosine + variance_hinge"), ValueError,
                                             "model.predictor_hidden: the objective"),
    "bad precision": Case(_config("train.precision=fp8"), ValueError,
                          "train.precision: expected one of ('auto', 'fp32', 'bf16', 'fp16', 'fastest'), got 'fp8'"),
    "bad time budget": Case(_config("train.time_budget_minutes=-1"), ValueError,
                            "train.time_budget_minutes: expected a finite number > 0, got -1.0"),
    "bad on_nonfinite": Case(_config("train.on_nonfinite=ignore"), ValueError, "train.on_nonfinite: expected one of ('stop', 'skip')"),
    "unknown optimizer": Case(_config("optim.optimizer=adam"), ValueError, "optim.optimizer: expected one of ('sgd', 'lars', 'adamw'), got 'adam'"),
    "unknown backbone": Case(_config("model.backbone=vgg11"), ValueError, "model.backbone: expected one of ['resnet18'"),
    "unknown device": Case(_config("train.device=tpu"), ValueError, "train.device: expected auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    "unknown dataset": Case(_config("data.dataset=mnist"), ValueError, "expected one of ['cifar10', 'cifar100', 'digits', 'imagefolder'], got 'mnist'"),
    "misspelled key": Case(_config("optim.lerning_rate=0.1"), ValueError, "Key 'lerning_rate' not in 'OptimConfig'"),
    "wrong type": Case(_config("train.epochs=many"), ValueError, "Value 'many' of type 'str' could not be converted to Integer"),
    "momentum of 1.5": Case(_config("optim.momentum=1.5"), ValueError, "optim.momentum: expected a number in [0, 1), got 1.5"),
    "negative seed": Case(_config("train.seed=-1"), ValueError, "train.seed: expected an integer >= 0, got -1"),
    "probability of 2": Case(_config("augment.view1.hflip_prob=2"), ValueError, "augment.view1.hflip_prob: expected a probability in [0, 1], got 2.0"),
    "imagefolder without root": Case(_config("data.dataset=imagefolder"), ValueError, "data.root: the imagefolder dataset needs data.root="),
    "missing config file": Case(lambda tmp: load_config(tmp / "nope.yaml"), FileNotFoundError, "config: no such file"),
    "unknown key in a YAML file": Case(_yaml_file("train:\n  lr: 0.1\n"), ValueError, "Key 'lr' not in 'TrainConfig'"),
    # --- datasets (what train() meets when it loads the images)
    "missing data folder": Case(lambda tmp: _train_on_folder(tmp, tmp / "nowhere"), FileNotFoundError, "image folder"),
    "empty class folder": Case(_folder(_empty_class), ValueError, "bird holds no images (.jpg, .jpeg, .png, .bmp, .webp)"),
    "corrupt JPEG": Case(_folder(_corrupt_jpeg), ValueError, "cannot decode image"),
    "text file named .png": Case(_folder(_text_as_png), ValueError, "cannot decode image"),
    "images of two sizes": Case(_folder(_other_size), ValueError, "pass image_size=... to resize all images"),
    "no test split": Case(_folder(_no_test_split), FileNotFoundError, "has split subfolders but no test/ folder"),
    "no class folders": Case(_folder(_no_classes), ValueError, "root: no class folders in"),
    "dataset smaller than a batch": Case(_folder(lambda root: None, "train.batch_size=16"), ValueError,
                                         "train.batch_size: 16 is larger than the training set (8 images)"),
    "missing CIFAR archive": Case(lambda tmp: train(tiny_config(tmp / "run", "data.dataset=cifar10", f"data.root={tmp}/c.tar.gz")),
                                  FileNotFoundError, "no such archive"),
    # --- output folders
    "output under a regular file": Case(_prepare(lambda tmp: _regular_file(tmp) / "run"), ValueError, "train.out_dir: cannot write to"),
    "output is a regular file": Case(_prepare(_regular_file), ValueError, "exists and is not a folder"),
    "folder holds a run": Case(_prepare(lambda tmp: _run_folder(tmp)), ValueError, "already holds a run; pass --resume to continue it"),
    "resume of a different run": Case(_prepare(lambda tmp: _run_folder(tmp), True, "train.seed=7"), ValueError,
                                      "holds a different run; --resume cannot continue it with train.seed: 0 -> 7"),
    # --- objective inputs
    "NaN embedding": Case(_objective(NAN, Z), ValueError, "z1: expected finite values, got 1 NaN/inf entries"),
    "3-D embeddings": Case(_objective(Z[None], Z[None]), ValueError, "z1: expected a 2-D tensor of shape (batch, dim), got 3-D"),
    "views of different shapes": Case(_objective(Z, Z[:6]), ValueError, "z2: expected the same shape as z1 (8, 8), got (6, 8)"),
    "batch of one embedding": Case(_objective(Z[:1], Z[:1]), ValueError, "z1: expected a batch of at least 2 rows, got 1"),
    "integer embeddings": Case(_objective(Z.long(), Z.long()), ValueError, "z1: expected a floating-point dtype, got torch.int64"),
    "a list, not a tensor": Case(_objective(Z.tolist(), Z), ValueError, "z1: expected a torch.Tensor of shape (batch, dim), got list"),
    "predictor objective without p": Case(_objective(Z, Z, "negative_cosine"), ValueError, "p1, p2: this objective has a predictor term"),
    "pure function, NaN input": Case(lambda tmp: covariance_penalty(NAN), ValueError, "z: expected finite values"),
    # --- checkpoint files
    "missing checkpoint": Case(lambda tmp: load_checkpoint_file(tmp / "checkpoint-00000001.pt"), FileNotFoundError,
                               "checkpoint: no such file"),
    "corrupt checkpoint": Case(_checkpoint(_signed(lambda p: p.write_bytes(b"PK\x03\x04" + bytes(200)))), CheckpointError,
                               "cannot be read, the file is truncated, corrupt or not written by torch.save"),
    "checkpoint without checksum": Case(_checkpoint(lambda p: torch.save({"model": {}, "step": 1}, p)), CheckpointError,
                                        "no checksum file checkpoint-00000001.pt.sha256 next to it"),
    "not a covssl checkpoint": Case(_checkpoint(_signed(lambda p: torch.save({"weights": torch.ones(2)}, p))), CheckpointError,
                                    "not a covssl checkpoint (expected a dict with format='covssl-checkpoint-1'"),
    "a tensor, not a dict": Case(_checkpoint(_signed(lambda p: torch.save(torch.ones(2), p))), CheckpointError,
                                 "not a covssl checkpoint"),
    "only unusable checkpoints": Case(_all_damaged, CheckpointError, "no usable checkpoint"),
    "run folder without config": Case(lambda tmp: load_run(tmp), FileNotFoundError, "has no config.yaml; is it a covssl run folder?"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_its_error(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    with pytest.raises(case.error, match=re.escape(case.fragment)):
        case.make(tmp_path)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30


# ------------------------------------------------------------------------------------------------
# the command line: the same errors, exit code 2, one message, no traceback


def _corrupt_run(tmp: Path) -> Path:
    run_dir = _run_folder(tmp)
    checksum_path(run_dir / "checkpoint-00000004.pt").write_text("0" * 64)
    return run_dir


CLI_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "bad value": (lambda tmp: ["train", "optim.lr=-3", f"train.out_dir={tmp}/run"], "optim.lr: expected a finite number > 0"),
    "bad spec": (lambda tmp: ["train", "method.objective=mse + bogus", f"train.out_dir={tmp}/run"], "unknown objective term 'bogus'"),
    "not key=value": (lambda tmp: ["train", "fast"], "Key 'fast' not in 'RunConfig'"),
    "missing config file": (lambda tmp: ["train", "-c", str(tmp / "nope.yaml")], "config: no such file"),
    "unknown flag": (lambda tmp: ["train", "--fast"], "No such option: --fast"),
    "folder holds a run": (lambda tmp: ["train", *TINY, f"train.out_dir={_run_folder(tmp)}"], "already holds a run"),
    "eval of a missing run": (lambda tmp: ["eval", str(tmp / "nope")], "no such run folder or checkpoint"),
    "export of a damaged run": (lambda tmp: ["export", str(_corrupt_run(tmp)), str(tmp / "out")], "sha256 mismatch"),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_error_is_exit_code_2_and_one_clear_message(tmp_path: Path, name: str) -> None:
    argv, fragment = CLI_CASES[name]
    result = CliRunner().invoke(app, argv(tmp_path), terminal_width=400)
    assert result.exit_code == 2, result.output
    assert fragment in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)

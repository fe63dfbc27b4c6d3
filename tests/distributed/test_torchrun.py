"""`torchrun --nproc_per_node=2 -m covssl train` (gloo, CPU) trains the weights 1 process trains.

Same global batch of 16 (8 per rank), same data order, same augmentations (each rank applies
its rows' share of the global batch's draws), global BatchNorm statistics (SyncBatchNorm on),
DDP's gradient average: the 2-process weights equal the 1-process ones up to float32 reduction
order. The 2-process run stops at step 1 and resumes with ``--resume`` to step 3, so the same
comparison also checks that both ranks resume from rank 0's checkpoint.
It stops at step 1 and resumes to step 3, so that a rank resuming with the wrong optimizer
state would take a wrong second step (DDP re-broadcasts rank 0's weights, not the momentum).

The images are a small ImageFolder tree cut from the CIFAR-10 JPEG copy (8 + 4 per class,
~1 s to extract; the full copy takes ~25 s to decode on first use).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from covssl.resolve import load_config
from covssl.train import train
from covssl.train.checkpoint import list_checkpoints, load_checkpoint_file

REPO = Path(__file__).resolve().parents[2]
SHARED_TAR = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
PER_CLASS = {"train": 8, "test": 4}
# float32: the two runs sum the same numbers in different orders (per-rank partial sums in BN,
# gradients averaged by DDP); measured differences after 3 steps are ~1e-7, the steps themselves ~1e-3.
ATOL = 1e-5
CONFIG = "cifar10/vicreg"  # both runs name it: the CLI's default config is not load_config's


@pytest.fixture(scope="module")
def mini_cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/{train,test}/<class>/*.jpg with the first few images of each class of the copy."""
    if not SHARED_TAR.is_file():
        pytest.skip(f"{SHARED_TAR} not present")
    root = tmp_path_factory.mktemp("mini_cifar")
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(SHARED_TAR, "r|gz") as archive:  # streamed: one pass over the archive
        for member in archive:
            parts = Path(member.name).parts  # cifar10/<split>/<class>/<file>.jpg
            if not member.isfile() or len(parts) != 4 or parts[1] not in PER_CLASS:
                continue
            key = (parts[1], parts[2])
            if taken.get(key, 0) >= PER_CLASS[parts[1]]:
                continue
            target = root / parts[1] / parts[2] / parts[3]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())  # type: ignore[union-attr]
            taken[key] = taken.get(key, 0) + 1
    return root


def _overrides(root: Path, out_dir: Path, max_steps: int) -> list[str]:
    return [
        "data.dataset=imagefolder",
        f"data.root={root}",
        f"data.cache_dir={root.parent / 'cache'}",
        "data.max_train_images=64",
        "data.max_eval_images=32",
        "model.backbone=small_convnet",
        "model.width=0.25",
        "model.projector_hidden=[64]",
        "model.projector_out=32",
        "model.sync_batchnorm=true",
        "train.batch_size=16",
        "train.epochs=2",
        f"train.max_steps={max_steps}",
        "train.log_every=1",
        "train.progress=false",
        f"train.out_dir={out_dir}",
        "optim.warmup_epochs=0",
        "eval.knn_k=5",
    ]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "covssl"]
    done = subprocess.run([*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _losses(run_dir: Path) -> list[float]:
    with open(run_dir / "steps.csv", newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_two_processes_train_the_weights_of_one_and_resume(mini_cifar: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    train(load_config(CONFIG, _overrides(mini_cifar, one, max_steps=4)))  # 4 steps = one epoch
    first = _torchrun("train", "-c", CONFIG, *_overrides(mini_cifar, two, max_steps=1))
    assert first.stdout.count("run folder:") == 1  # only rank 0 prints
    _torchrun("train", "-c", CONFIG, "--resume", *_overrides(mini_cifar, two, max_steps=4))

    expected = load_checkpoint_file(list_checkpoints(one)[-1])
    at_1, at_3 = (load_checkpoint_file(p) for p in list_checkpoints(two)[-2:])
    assert (at_1["step"], at_3["step"], expected["step"]) == (1, 4, 4)
    moved = max(float((at_3["model"][k] - at_1["model"][k]).abs().max()) for k in at_3["model"] if k.endswith("weight"))
    assert moved > 100 * ATOL  # the steps taken after the resume are far larger than the tolerance
    for key, value in expected["model"].items():
        if value.is_floating_point():  # weights, and the BatchNorm running statistics
            torch.testing.assert_close(at_3["model"][key], value, rtol=0, atol=ATOL, msg=key)
        else:
            assert torch.equal(at_3["model"][key], value), key  # num_batches_tracked
    # the epoch-end collapse indicators describe the global batch (gathered), as in one process
    rows = [list(csv.DictReader(open(run / "epochs.csv", newline=""))) for run in (one, two)]
    for name in ("std_of_normalized", "effective_rank", "rankme", "nesum", "stable_rank", "w2_uniformity"):
        assert float(rows[1][0][name]) == pytest.approx(float(rows[0][0][name]), rel=1e-4), name
    # the probe (rank 0) of the final model: the same label-free metrics as one process
    probes = [json.loads((run / "results.json").read_text())["label_free"] for run in (one, two)]
    assert probes[0] and probes[1] == pytest.approx(probes[0], rel=1e-3)
    # the logged numbers are the global batch's (averaged over ranks), step for step
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-5)


@pytest.mark.slow
def test_two_processes_agree_on_a_budget_plan_and_a_timed_precision(mini_cifar: Path, tmp_path: Path) -> None:
    run = tmp_path / "budget"
    overrides = [o for o in _overrides(mini_cifar, run, max_steps=1) if not o.startswith("train.max_steps")]
    overrides += ["train.epochs=3", "train.time_budget_minutes=10", "train.precision=fastest"]
    done = _torchrun("train", "-c", CONFIG, *overrides)  # rank 0 plans and broadcasts; a mismatch would hang
    assert done.stdout.count("run folder:") == 1
    summary = json.loads((run / "results.json").read_text())
    assert summary["epochs"] == 3 and summary["step"] == 12  # 10 minutes fit the cap of 3 epochs of 4 steps
    assert summary["precision"] in ("fp32", "bf16")
    state = load_checkpoint_file(list_checkpoints(run)[-1])
    assert (state["epochs"], state["precision"]) == (3, summary["precision"])

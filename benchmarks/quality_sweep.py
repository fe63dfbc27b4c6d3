"""Do the label-free metrics rank runs as their accuracy does? A sweep of one method, then ``covssl compare``.

Nine short VICReg runs on CIFAR-10 (a 10,000-image training subset, 2,000 test images, ResNet-18
x0.25, 24-px crops, LARS), varying the loss weights, the learning rate and the projector width,
plus one run without the variance and covariance terms, which collapses. Every run logs the
label-free metrics each epoch and evaluates kNN (and, at the end, the linear probe) each epoch,
so that ``covssl compare`` can correlate the metrics with accuracy across runs and within each
run over epochs.

    .venv/bin/python benchmarks/quality_sweep.py --cifar /path/to/cifar10-jpeg.tar.gz \
        --runs runs/quality-sweep --out benchmarks/results/quality_sweep

Runs whose ``results.json`` exists are not trained again (the sweep resumes where it stopped).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

VICREG = "mse:{sim} + variance_hinge:{var} + covariance_penalty:{cov}"
COMMON = [
    "method.name=vicreg", "data.dataset=cifar10", "data.max_train_images=10000", "data.max_eval_images=2000",
    "model.backbone=resnet18", "model.width=0.25", "model.cifar_stem=true", "augment.image_size=24",
    "augment.view1.crop_scale=[0.35,1.0]", "augment.view2.crop_scale=[0.35,1.0]", "eval.image_size=32",
    "train.batch_size=256", "train.precision=fp32", "train.channels_last=true", "train.knn_every=1",
    "train.progress=false", "eval.linear_probe=true", "eval.baselines=false", "optim.warmup_epochs=1",
]


def sweep() -> dict[str, list[str]]:
    """Run name -> its overrides on top of COMMON."""
    def run(sim: float = 25, var: float = 25, cov: float = 1, lr: float = 0.3, width: int = 1024) -> list[str]:
        return [f"method.objective={VICREG.format(sim=sim, var=var, cov=cov)}", f"optim.lr={lr}",
                f"model.projector_hidden=[{width}]", f"model.projector_out={width}"]

    return {
        "base": run(),
        "lr0.1": run(lr=0.1),
        "lr1.0": run(lr=1.0),
        "var5": run(var=5),
        "cov5": run(cov=5),
        "sim50": run(sim=50),
        "width256": run(width=256),
        "width512": run(width=512),
        "collapse": [f"method.objective=mse:25", "optim.lr=0.3", "model.projector_hidden=[1024]",
                     "model.projector_out=1024"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", required=True, help="CIFAR-10 folder or .tar.gz copy")
    parser.add_argument("--runs", type=Path, default=Path("runs/quality-sweep"), help="where the run folders go")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality_sweep"),
                        help="covssl compare's output folder")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--only", nargs="*", help="train only these runs")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    names = args.only or list(sweep())
    for name in names:
        run_dir = args.runs / name
        if (run_dir / "results.json").is_file():
            print(f"{name}: done already", flush=True)
            continue
        overrides = [*COMMON, *sweep()[name], f"data.root={args.cifar}", f"train.epochs={args.epochs}",
                     f"train.out_dir={run_dir}"]
        resume = ["--resume"] if any(run_dir.glob("checkpoint-*.pt")) else []  # a folder holds a run once it has one
        print(f"{name}: training", flush=True)
        subprocess.run([sys.executable, "-m", "covssl", "train", *resume, *overrides], check=True, env=env)
    run_dirs = [str(args.runs / name) for name in sweep()]
    subprocess.run([sys.executable, "-m", "covssl", "compare", *run_dirs, "--out", str(args.out)], check=True, env=env)


if __name__ == "__main__":
    main()

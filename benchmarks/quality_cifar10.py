"""Fixed-budget quality protocol on the CIFAR-10 copy: every preset, the same backbone, views and schedule.

Each preset trains the same ResNet (CIFAR stem, small width), on the same two-view augmentation
recipe (SimCLR's CIFAR recipe by default) at the same crop size, with the same projector widths,
batch, epochs and warm-up + cosine schedule; only the objective, the optimizer and learning rate
of the method's paper (its registry entry) and a method's extra heads (SimSiam/BYOL predictor,
EMA target) differ. Reported per preset: kNN top-1 (k=200, T=0.1) and linear-probe top-1 on the
test split, training images/s, training and total wall time, peak resident memory; once per run:
raw-pixel kNN and a random-init encoder (the floor any learning must beat). Results go to
benchmarks/results/quality_cifar10.csv, stamped with machine, torch, threads and date.

The defaults are the settings of the shipped config ``cifar10/cpu_fast`` (found by the pilots
recorded in that file): the budget a 2-core CPU affords in about 30 minutes per preset.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/quality_cifar10.py --methods vicreg simclr
    .venv/bin/python benchmarks/quality_cifar10.py --quick      # digits, seconds: keeps it working
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from covssl.augment import augment_preset
from covssl.resolve import load_config
from covssl.methods import list_methods
from _common import (
    cifar_benchmark_parser, data_overrides, describe_machine, method_overrides, peak_memory_mb, reset_peak_memory,
    run_each,
)
from covssl.train import train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quality_cifar10.csv"


machine = describe_machine  # kept as a name: tests and rows use benchmark.machine()

# The protocol's budget. The network, resolution, batch, precision and evaluation are those of
# covssl/configs/cifar10/cpu_fast.yaml (a test checks it); the schedule is fixed in epochs, not in
# minutes, so that every preset trains as long, and the embedding is 2048-d for every preset
# (cpu_fast's CorInfoMax uses its paper's d = 64: --set model.projector_out=64). The crops differ:
# >= 20% of the image here, where 40 epochs are trained (VICReg, 40 epochs: 71.0% kNN vs 70.6% with
# >= 35%), >= 35% in cpu_fast, which trains ~15 epochs on a 2-core Xeon (where >= 35% won).
PROTOCOL = {
    "backbone": "resnet18",
    "width": 0.25,
    "image_size": 24,
    "projector_hidden": [2048],
    "projector_out": 2048,
    "batch_size": 256,
    "epochs": 40,
    "warmup_epochs": 2.0,
    "crop_min_scale": 0.2,
    "eval_image_size": 32,
    "precision": "fastest",
    "channels_last": True,
}
SHARED_WITH_CPU_FAST = ("backbone", "width", "image_size", "projector_hidden", "batch_size", "eval_image_size",
                        "precision", "channels_last")


def _dotlist(prefix: str, value: Any) -> list[str]:
    """Flatten a nested dict into OmegaConf ``a.b=value`` strings (lists written as ``[x,y]``)."""
    if isinstance(value, dict):
        return [item for key, sub in value.items() for item in _dotlist(f"{prefix}.{key}", sub)]
    if isinstance(value, (list, tuple)):
        return [f"{prefix}=[{','.join(repr(float(v)) for v in value)}]"]
    return [f"{prefix}={value}"]


def common_augment(recipe: str, image_size: int, dataset: str) -> list[str]:
    """Overrides that give every preset the same two-view recipe (blur kernel sized for the crops)."""
    return _dotlist("augment", asdict(augment_preset(recipe, image_size, dataset)))


def protocol_overrides(method: str, args: argparse.Namespace) -> list[str]:
    """The shared budget for one preset, as ``load_config`` overrides."""
    hidden = ",".join(str(h) for h in args.projector_hidden)
    overrides = [
        f"method.name={method}",
        f"data.dataset={args.dataset}",
        f"model.backbone={args.backbone}",
        f"model.width={args.width}",
        f"model.projector_hidden=[{hidden}]",
        f"model.projector_out={args.projector_out}",
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
        f"optim.warmup_epochs={args.warmup_epochs}",
        f"augment.image_size={args.image_size}",
        f"eval.image_size={args.eval_image_size}",
        f"train.precision={args.precision}",
        f"train.channels_last={args.channels_last}",
        f"eval.linear_probe={args.linear_probe}",
        f"eval.linear_epochs={args.linear_epochs}",
        f"train.out_dir={args.runs / method}",
        "train.progress=false",
        "train.keep_checkpoints=1",
    ]
    overrides += data_overrides(args.dataset, args.root, args.images, args.eval_images)
    if args.augment != "method":  # the same views for all; "method" keeps each paper's own recipe
        overrides += common_augment(args.augment, args.image_size, args.dataset)
    overrides += [f"augment.{view}.crop_scale=[{args.crop_min_scale},1.0]" for view in ("view1", "view2")]
    overrides += method_overrides(method, args.batch_size, args.projector_out, args.quick)
    return overrides + list(args.set)


def run(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one preset under the protocol and measure it."""
    config = load_config(None, protocol_overrides(method, args))
    reset_peak_memory()
    started = time.perf_counter()
    result = train(config, overwrite=True)
    wall = time.perf_counter() - started
    images = result.step * config.train.batch_size
    return {
        "method": method,
        "knn_top1": round(100 * result.knn["trained"], 2),
        "linear_top1": "" if result.linear_probe is None else round(100 * result.linear_probe, 2),
        "random_init_knn_top1": round(100 * result.knn["random_init"], 2),
        "raw_pixels_knn_top1": round(100 * result.knn["raw_pixels"], 2),
        "train_images_per_s": round(result.images_per_second, 1),
        "train_s": round(images / result.images_per_second, 2) if result.images_per_second else 0.0,
        "wall_s": round(wall, 1),  # training + the kNN/probe evaluations + baselines
        "peak_rss_mb": round(peak_memory_mb()),
        "optimizer": f"{config.optim.optimizer} lr {config.optim.lr:g}",
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cifar_benchmark_parser(
        __doc__, "tiny run on digits (seconds), for the test suite", out=RESULTS, runs=Path("/tmp/covssl-quality-runs")
    )
    p.add_argument("--backbone", default=PROTOCOL["backbone"])
    p.add_argument("--width", type=float, default=PROTOCOL["width"])
    p.add_argument("--image-size", type=int, default=PROTOCOL["image_size"], help="training crop side")
    p.add_argument("--eval-image-size", type=int, default=PROTOCOL["eval_image_size"], help="kNN/probe image side")
    p.add_argument("--crop-min-scale", type=float, default=PROTOCOL["crop_min_scale"], help="smallest crop area")
    p.add_argument("--precision", default=PROTOCOL["precision"], help="fastest: fp32 or bf16, whichever a timed step favours")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=PROTOCOL["channels_last"])
    p.add_argument("--projector-hidden", type=int, nargs="+", default=PROTOCOL["projector_hidden"])
    p.add_argument("--projector-out", type=int, default=PROTOCOL["projector_out"])
    p.add_argument("--batch-size", type=int, default=PROTOCOL["batch_size"])
    p.add_argument("--epochs", type=int, default=PROTOCOL["epochs"])
    p.add_argument("--warmup-epochs", type=float, default=PROTOCOL["warmup_epochs"])
    p.add_argument("--augment", default="simclr", help="augmentation recipe for all presets, or 'method'")
    p.add_argument("--linear-probe", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--linear-epochs", type=int, default=100, help="L-BFGS iterations of the probe")
    args = p.parse_args(argv)
    args.dataset = "cifar10"
    if args.quick:
        args.dataset, args.images, args.eval_images, args.epochs, args.batch_size = "digits", 64, 64, 1, 32
        args.width, args.image_size, args.projector_hidden, args.projector_out = 0.125, 16, [64], 32
        args.eval_image_size = 16
        args.linear_epochs = 5
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    stamp = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "setting": (
            f"{args.dataset} {args.images or 'all'} train / {args.eval_images or 'all'} test imgs, "
            f"{args.backbone} x{args.width} @{args.image_size}px (eval {args.eval_image_size}px, crops >= "
            f"{args.crop_min_scale}), {args.precision}{' NHWC' if args.channels_last else ''}, proj {args.projector_hidden}->{args.projector_out}, "
            f"batch {args.batch_size}, {args.epochs} ep (warm-up {args.warmup_epochs}), views {args.augment}"
        ),
    }
    rows = run_each(args.methods or list_methods(), lambda method: run(method, args), args.out, stamp)
    print(f"\n{stamp}")
    first = rows[0]
    print(f"raw-pixel kNN {first['raw_pixels_knn_top1']:.2f}%, "
          f"random-init encoder kNN {first['random_init_knn_top1']:.2f}%")
    print(f"{'method':14s} {'kNN%':>6s} {'lin%':>6s} {'img/s':>7s} {'train s':>8s} {'wall s':>7s} {'MiB':>6s}")
    for r in rows:
        lin = f"{r['linear_top1']:6.2f}" if r["linear_top1"] != "" else f"{'-':>6s}"
        print(f"{r['method']:14s} {r['knn_top1']:6.2f} {lin} {r['train_images_per_s']:7.1f} "
              f"{r['train_s']:8.1f} {r['wall_s']:7.1f} {r['peak_rss_mb']:6d}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])

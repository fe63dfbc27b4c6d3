"""End-to-end training benchmark on the CIFAR-10 copy: every preset, same backbone and budget.

For each method: train a small-width ResNet-18 (CIFAR stem) on a seeded subset of CIFAR-10 for a
fixed number of epochs, then report kNN top-1 (k=200, T=0.1) on the test subset, training
images/s, wall time and peak resident memory, next to a random-init encoder and raw pixels
(measured once, in the same run). Results go to benchmarks/results/train_cifar10.csv.

    .venv/bin/python benchmarks/train_cifar10.py                 # the full table (tens of minutes)
    .venv/bin/python benchmarks/train_cifar10.py --quick          # seconds: keeps the script working
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

from _common import (
    cifar_benchmark_parser, data_overrides, describe_machine, method_overrides, peak_memory_mb, reset_peak_memory,
    run_each,
)
from covssl.resolve import load_config
from covssl.methods import list_methods
from covssl.train import train

ROOT = Path(__file__).resolve().parents[1]


def run(method: str, args: argparse.Namespace, out_root: Path) -> dict[str, object]:
    overrides = [
        f"method.name={method}",
        f"data.dataset={args.dataset}",
        f"model.backbone={args.backbone}",
        f"model.width={args.width}",
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
        f"train.out_dir={out_root / method}",
        "train.progress=false",
        "optim.warmup_epochs=1",
    ]
    overrides += data_overrides(args.dataset, args.root, args.images, args.eval_images)
    if args.quick:  # small heads: the quick mode only keeps the script working
        overrides += ["model.projector_hidden=[64]", "model.projector_out=32"]
    projector_out = load_config(None, overrides).model.projector_out
    overrides += method_overrides(method, args.batch_size, projector_out, args.quick)
    config = load_config(None, overrides + list(args.set))
    reset_peak_memory()  # this method's own peak, not the process's running maximum
    started = time.perf_counter()
    result = train(config, overwrite=True)
    wall = time.perf_counter() - started
    return {
        "method": method,
        "knn_top1": round(100 * result.knn["trained"], 2),
        "random_init_knn_top1": round(100 * result.knn["random_init"], 2),
        "raw_pixels_knn_top1": round(100 * result.knn["raw_pixels"], 2),
        "images_per_s": round(result.images_per_second, 1),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_memory_mb(), 0),
    }


def augmentation_throughput(batch_size: int, quick: bool) -> list[dict]:
    """Two-view augmentation images/s, covssl vs a per-image PIL pipeline, measured in this run."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("covssl_bench_augment", Path(__file__).with_name("augment.py"))
    augment_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(augment_bench)  # type: ignore[union-attr]
    images = np.random.default_rng(0).integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8)
    return augment_bench.measure(1, (batch_size,), 1 if quick else 5, images, mallopt=False)


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = cifar_benchmark_parser(
        __doc__, "tiny run on digits, seconds", out=ROOT / "benchmarks" / "results" / "train_cifar10.csv",
        runs=Path("/tmp/covssl-bench-runs"), images=10000, eval_images=2000,
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--backbone", default="resnet18")
    args = parser.parse_args(argv)
    args.dataset = "cifar10"
    if args.quick:
        args.dataset, args.images, args.eval_images, args.epochs = "digits", 64, 64, 1
        args.batch_size, args.backbone, args.width = 32, "small_convnet", 0.25
    stamp = {
        "machine": f"{describe_machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "setting": f"{args.dataset} {args.images} imgs, {args.epochs} ep, batch {args.batch_size}, {args.backbone} x{args.width}",
    }
    rows = run_each(args.methods or list_methods(), lambda method: run(method, args, args.runs), args.out, stamp)
    print(f"\n{stamp}\n{'method':14s} {'kNN%':>6s} {'rand%':>6s} {'pix%':>6s} {'img/s':>7s} {'wall s':>7s}")
    for r in rows:
        print(f"{r['method']:14s} {r['knn_top1']:6.2f} {r['random_init_knn_top1']:6.2f} {r['raw_pixels_knn_top1']:6.2f} "
              f"{r['images_per_s']:7.1f} {r['wall_s']:7.1f}")
    print("\naugmentation, two views, 1 thread, same run:")
    for r in augmentation_throughput(args.batch_size, args.quick):
        if r["pipeline"] in ("covssl", "pil"):
            print(f"  {r['pipeline']:8s} {r['images_per_s']:9.1f} images/s  ({r['speedup_vs_pil']:.2f}x PIL)")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])

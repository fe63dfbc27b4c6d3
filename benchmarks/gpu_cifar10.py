"""GPU protocol matching lightly's published CIFAR-10 benchmark, for every preset.

lightly's benchmark (https://docs.lightly.ai/self-supervised-learning/getting_started/benchmarks.html)
trains each method with a full-width ResNet-18 (CIFAR variant), batch 512, 200 epochs, and tracks
kNN top-1 (k=200, T=0.1; the train split as the feature bank, the 10k test split as queries).
Here: the same backbone (``model.width=1.0``, 3x3 stride-1 stem, no max-pool), batch, epochs and
kNN protocol; each preset keeps its paper's objective, heads, augmentations and optimizer
(``covssl methods``), with bf16 autocast on CUDA (the objective runs in fp32). While a preset
trains, a watcher thread reads the run's ``epochs.csv`` and prints each epoch's wall time and,
every ``--knn-every`` epochs, its kNN; the table at the end gives seconds per epoch (mean of the
epochs after the first without a kNN evaluation) and the final kNN. Results: benchmarks/results/gpu_cifar10.csv.

    .venv/bin/python benchmarks/gpu_cifar10.py                          # all presets, 200 epochs
    .venv/bin/python benchmarks/gpu_cifar10.py --methods vicreg --epochs 10
    .venv/bin/python benchmarks/gpu_cifar10.py --quick                  # one tiny epoch on CPU (digits)
"""

from __future__ import annotations

import argparse
import csv
import datetime
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from covssl.resolve import load_config
from covssl.methods import list_methods
from _common import cifar_benchmark_parser, data_overrides, describe_machine, method_overrides, run_each
from covssl.train import train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "gpu_cifar10.csv"


machine = describe_machine  # kept as a name: tests and rows use benchmark.machine()


class EpochWatcher(threading.Thread):
    """Polls a run's epochs.csv and records when each epoch row appears (wall time per epoch)."""

    def __init__(self, path: Path, method: str, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.path, self.method, self.interval = path, method, interval
        self.rows: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.started = time.perf_counter()

    def _poll(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if None not in r.values()]
        for row in rows[len(self.rows):]:
            now = time.perf_counter()
            previous = self.rows[-1]["at"] if self.rows else self.started
            knn = float(row["knn_top1"]) * 100 if row.get("knn_top1") else None
            self.rows.append({"epoch": int(row["epoch"]) + 1, "at": now, "seconds": now - previous, "knn": knn})
            knn_text = f"  kNN {knn:.2f}%" if knn is not None else ""
            print(f"  {self.method} epoch {int(row['epoch']) + 1}: {now - previous:.1f} s{knn_text}", flush=True)

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self._poll()
        self._poll()  # rows written just before the run ended


def protocol_overrides(method: str, args: argparse.Namespace) -> list[str]:
    """lightly's budget for one preset, as ``load_config`` overrides."""
    overrides = [
        f"method.name={method}",
        f"data.dataset={args.dataset}",
        "model.backbone=resnet18",
        f"model.width={args.width}",
        "model.cifar_stem=true",
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
        f"train.knn_every={args.knn_every}",
        f"train.device={args.device}",
        "train.precision=auto",  # bf16 autocast on CUDA, fp32 on CPU
        "train.channels_last=true",  # NHWC: what cuDNN's bf16 tensor-core convolutions want
        "eval.knn_k=200",
        "eval.knn_temperature=0.1",
        f"train.out_dir={args.runs / method}",
        "train.progress=false",
        "train.keep_checkpoints=1",
    ]
    overrides += data_overrides(args.dataset, args.root, args.images, args.eval_images)
    if args.quick:  # small heads and one warm-up-free epoch: only keeps the script working
        overrides += ["model.projector_hidden=[64]", "model.projector_out=32", "optim.warmup_epochs=0",
                      "augment.image_size=16"]
    projector_out = 32 if args.quick else load_config(None, [f"method.name={method}"]).model.projector_out
    overrides += method_overrides(method, args.batch_size, projector_out, args.quick)
    return overrides + list(args.set)


def run(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one preset, watching its epochs; return seconds per epoch and the kNN numbers."""
    config = load_config(None, protocol_overrides(method, args))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    watcher = EpochWatcher(Path(config.train.out_dir) / "epochs.csv", method)
    # the run folder is rewritten by train(overwrite=True): drop a previous run's log before watching
    (Path(config.train.out_dir) / "epochs.csv").unlink(missing_ok=True)
    watcher.start()
    started = time.perf_counter()
    try:
        result = train(config, overwrite=True)
    finally:
        watcher.done.set()
        watcher.join()
    wall = time.perf_counter() - started
    # epoch 1 also pays for the baselines (random-init and raw-pixel kNN): left out of the mean when possible
    plain = [r["seconds"] for r in watcher.rows[1:] if r["knn"] is None] or [r["seconds"] for r in watcher.rows]
    # the last epoch's kNN is the final evaluation (train() does not log it in epochs.csv)
    evaluations = [(r["epoch"], r["knn"]) for r in watcher.rows if r["knn"] is not None]
    evaluations.append((len(watcher.rows), 100 * result.knn["trained"]))
    first = [f"{epoch}:{knn:.2f}" for epoch, knn in evaluations[:5]]
    return {
        "method": method,
        "knn_top1": round(100 * result.knn["trained"], 2),
        "random_init_knn_top1": round(100 * result.knn["random_init"], 2),
        "epochs": len(watcher.rows),
        "s_per_epoch": round(statistics.mean(plain), 2) if plain else 0.0,
        "first_knn": " ".join(first),  # epoch:kNN% of the first evaluations (the final one if none)
        "images_per_s": round(result.images_per_second, 1),
        "wall_s": round(wall, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else "",
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cifar_benchmark_parser(
        __doc__, "one tiny epoch on CPU (digits), for the test suite", out=RESULTS, runs=Path("/tmp/covssl-gpu-runs")
    )
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--width", type=float, default=1.0, help="ResNet-18 channel multiplier (1.0: lightly's)")
    p.add_argument("--knn-every", type=int, default=5, help="epochs between kNN evaluations")
    p.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    args = p.parse_args(argv)
    args.dataset = "cifar10"
    if args.quick:
        args.dataset, args.images, args.eval_images, args.epochs = "digits", 64, 64, 1
        args.batch_size, args.width, args.knn_every, args.device = 32, 0.125, 1, "cpu"
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    if device == "cpu" and not args.quick:
        print("warning: no CUDA device; this protocol takes days on a CPU (use --quick to check the script)")
    stamp = {
        "machine": machine(),
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "setting": (
            f"{args.dataset} {args.images or 'all'} imgs, resnet18 x{args.width}, batch {args.batch_size}, "
            f"{args.epochs} ep, kNN k=200 T=0.1 every {args.knn_every} ep"
        ),
    }
    rows = run_each(args.methods or list_methods(), lambda method: run(method, args), args.out, stamp)
    print(f"\n{stamp}\n{'method':14s} {'kNN%':>6s} {'s/epoch':>8s} {'img/s':>8s}  first kNN (epoch:%)")
    for r in rows:
        print(f"{r['method']:14s} {r['knn_top1']:6.2f} {r['s_per_epoch']:8.2f} {r['images_per_s']:8.1f}  "
              f"{r['first_knn']}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])

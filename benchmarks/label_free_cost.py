"""What the label-free metrics cost a training run, as a share of one epoch measured in the same run.

A run computes, every epoch, RankMe, NESum, stable rank, W2 uniformity (and alpha-ReQ when
d >= 100) on its last batch of embeddings, and, with each periodic kNN evaluation, the probe's
LiDAR and RankMe over ``eval.probe_views`` views of ``eval.probe_images`` training images. This
script builds a ``cifar10/cpu_fast``-like network (ResNet-18 x0.25, CIFAR stem, 24-px crops) for
each embedding width, times training steps on random images, and reports

    per-epoch metrics / one epoch of 50,000 images,   probe / one epoch

from medians over repetitions (a ratio of times measured in the same process; no bare times).

    .venv/bin/python benchmarks/label_free_cost.py --out benchmarks/results/label_free_cost.csv [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from _common import describe_machine, write_rows  # type: ignore[import-not-found]

EPOCH_IMAGES = 50_000  # CIFAR-10's training set


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(width: int, batch: int, steps: int, repeats: int, probe_images: int, probe_views: int) -> dict:
    from covssl.diagnostics import label_free_metrics
    from covssl.methods.model import build_model
    from covssl.resolve import load_config
    from covssl.train.data import Splits
    from covssl.train.evaluation import QualityProbe
    from covssl.data import ImageArrayDataset

    overrides = [f"model.projector_hidden=[{width}]", f"model.projector_out={width}", "train.channels_last=true",
                 f"eval.probe_images={probe_images}", f"eval.probe_views={probe_views}"]
    config = load_config("cifar10/cpu_fast", overrides)
    model = build_model(config).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = np.random.default_rng(0).integers(0, 256, size=(max(probe_images, batch), 32, 32, 3), dtype=np.uint8)
    dataset = ImageArrayDataset(images, np.zeros(len(images), dtype=np.int64), ["x"], "random")
    probe = QualityProbe(Splits(dataset, dataset, dataset), config, torch.device("cpu"))
    from covssl.augment import TwoViewAugment

    augment = TwoViewAugment(config.augment)
    batch_images = torch.from_numpy(images[:batch]).permute(0, 3, 1, 2)
    last_z: list[torch.Tensor] = []

    def train_steps() -> None:
        for step in range(steps):
            views = augment(batch_images, generator=torch.Generator().manual_seed(step))
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            output, z = model(*views)
            optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            optimizer.step()
            last_z[:] = [z]

    train_steps()  # warm-up
    step_seconds = _median_seconds(train_steps, repeats) / steps
    epoch_seconds = step_seconds * (EPOCH_IMAGES // batch)
    cheap_seconds = _median_seconds(lambda: label_free_metrics(last_z[0]), repeats)
    probe_seconds = _median_seconds(lambda: probe.metrics(model.backbone, model.projector), max(1, repeats // 2))
    return {
        "width": width, "batch": batch, "probe_images": probe_images, "probe_views": probe_views,
        "per_epoch_metrics_share_of_epoch": cheap_seconds / epoch_seconds,
        "probe_share_of_epoch": probe_seconds / epoch_seconds,
        "probe_over_train_step": probe_seconds / step_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/label_free_cost.csv"))
    parser.add_argument("--quick", action="store_true", help="one small setting, seconds (what the tests run)")
    args = parser.parse_args()
    if args.quick:
        settings = [dict(width=64, batch=32, steps=1, repeats=1, probe_images=16, probe_views=2)]
    else:
        settings = [dict(width=w, batch=256, steps=3, repeats=3, probe_images=1000, probe_views=8)
                    for w in (64, 512, 2048)]
    rows = []
    for setting in settings:
        stamp = {"machine": describe_machine(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "date": datetime.date.today().isoformat()}
        row = {**stamp, **measure(**setting)}
        rows.append(row)
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                        if k in ("width", "per_epoch_metrics_share_of_epoch", "probe_share_of_epoch")), flush=True)
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()

"""Training-step throughput by memory layout and precision, on this CPU (issue 8: what cpu_fast uses).

One full training step of ``cifar10/cpu_fast``'s model (two augmented views -> ResNet-18 x0.25 ->
projector -> its objective -> backward -> optimizer step; ``--set method.name=vicreg
model.projector_out=2048`` for the earlier VICReg model) on a batch of random uint8 images, timed in four
settings interleaved in the same run: fp32 or bf16 autocast (the objective stays fp32), NCHW or
channels_last (NHWC) weights and views. Reports images/s (pairs of views) and the ratio to fp32
NCHW. bf16 is fast only on some CPUs with native bf16 dot products (2.3x on an AMD EPYC Zen 4, slower
than fp32 on an Intel Xeon with AVX512-BF16 but no AMX); without them it is emulated and slower still.
``train.precision=fastest`` makes the same comparison at the start of a run. Results:
benchmarks/results/layout_precision.csv.

    .venv/bin/python benchmarks/layout_precision.py            # cpu_fast's model, batch 256
    .venv/bin/python benchmarks/layout_precision.py --quick    # seconds: keeps the script working
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

from _common import describe_machine, write_rows
from covssl.augment import TwoViewAugment
from covssl.resolve import load_config
from covssl.methods.model import build_model
from covssl.train.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]  # (precision, channels_last)


def make_step(overrides: list[str], precision: str, channels_last: bool, batch: int):
    """A closure running one training step in the given setting (own model, optimizer and views)."""
    config = load_config("cifar10/cpu_fast", overrides)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(config).to(memory_format=fmt)
    augment = TwoViewAugment(config.augment)
    optimizer = build_optimizer(model, config.optim, config.optim.lr)
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def step() -> None:
        views = [v.contiguous(memory_format=fmt) for v in augment(images)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            output, _ = model(*views)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model and batch, one round")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "layout_precision.csv")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides of the model")
    args = parser.parse_args(argv)
    overrides: list[str] = list(args.set)
    if args.quick:
        overrides += ["model.width=0.125", "model.projector_hidden=[64]", "model.projector_out=32", "augment.image_size=16"]
        args.batch_size, args.rounds = 16, 1
    steps = {s: make_step(overrides, *s, args.batch_size) for s in SETTINGS}
    for step in steps.values():  # warm-up: oneDNN picks and caches its kernels on the first calls
        step()
        step()
    times: dict[tuple[str, bool], list[float]] = {s: [] for s in SETTINGS}
    for _ in range(args.rounds):  # interleaved, so a busy moment of the machine hits every setting
        for setting, step in steps.items():
            start = time.perf_counter()
            step()
            times[setting].append(time.perf_counter() - start)
    baseline = statistics.median(times[("fp32", False)])
    stamp = {
        "machine": describe_machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "setting": f"cifar10/cpu_fast model {' '.join(overrides) or '(as shipped)'}, batch {args.batch_size}",
    }
    rows = []
    for precision, channels_last in SETTINGS:
        seconds = statistics.median(times[(precision, channels_last)])
        rows.append({
            "precision": precision,
            "layout": "NHWC" if channels_last else "NCHW",
            "step_ms": round(1e3 * seconds, 1),
            "images_per_s": round(args.batch_size / seconds, 1),
            "speedup_vs_fp32_nchw": round(baseline / seconds, 2),
            **stamp,
        })
    write_rows(args.out, rows)
    print(f"{stamp['machine']}, {stamp['threads']} threads, torch {stamp['torch']}, {stamp['setting']}")
    for r in rows:
        print(f"  {r['precision']} {r['layout']}: {r['step_ms']:7.1f} ms/step {r['images_per_s']:8.1f} images/s "
              f"{r['speedup_vs_fp32_nchw']:5.2f}x")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])

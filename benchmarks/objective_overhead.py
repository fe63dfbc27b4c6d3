"""Share of a real training step spent in the objective (issue 8, speed item 2).

For each preset: build the method's model around a ResNet-18 (CIFAR stem), time one full training
step (augmented views -> backbone -> projector -> objective -> backward -> optimizer step) and,
in the same run, the objective's own forward + backward on embeddings of the same shape. Reports
the objective's share of the step. Expected: <= 5% at the CIFAR batch sizes.

    .venv/bin/python benchmarks/objective_overhead.py                  # width 0.5, batch 256
    .venv/bin/python benchmarks/objective_overhead.py --quick          # seconds
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

from _common import describe_machine, method_overrides, write_rows
from covssl.resolve import load_config
from covssl.methods import list_methods
from covssl.methods.model import build_model
from covssl.train.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(method: str, args: argparse.Namespace) -> dict[str, object]:
    overrides = [f"method.name={method}", f"model.width={args.width}", f"train.batch_size={args.batch_size}"]
    if args.quick:
        overrides += ["model.backbone=small_convnet", "model.projector_hidden=[64]", "model.projector_out=32"]
    projector_out = load_config(None, overrides).model.projector_out
    overrides += method_overrides(method, args.batch_size, projector_out, args.quick)
    config = load_config(None, overrides)
    torch.manual_seed(0)
    model = build_model(config)
    optimizer = build_optimizer(model, config.optim, config.optim.lr)
    crops = config.augment
    local_size = max(1, round(args.image_size * crops.local_size / crops.image_size))  # the method's ratio
    sizes = [args.image_size] * crops.global_crops + [local_size] * crops.local_crops  # every view of the method
    views = [torch.randn(args.batch_size, 3, size, size) for size in sizes]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        output, _ = model(*views)
        output.loss.backward()
        optimizer.step()

    dim = config.model.projector_out
    z = [torch.randn(args.batch_size, dim, requires_grad=True) for _ in sizes]
    p = [torch.randn(args.batch_size, dim, requires_grad=True) for _ in sizes]
    teacher = [torch.randn(args.batch_size, dim) for _ in range(crops.global_crops)]

    def objective_only() -> None:
        objective = model.objective
        output = objective.over_views(
            z, p if objective.needs_predictions else None, crops.global_crops,
            teacher if objective.needs_targets else None,
        )
        output.loss.backward()

    step_s = _timed(step, args.repeats)
    objective_s = _timed(objective_only, args.repeats)
    return {
        "method": method,
        "batch": args.batch_size,
        "dim": dim,
        "step_ms": round(1e3 * step_s, 1),
        "objective_ms": round(1e3 * objective_s, 2),
        "objective_share_pct": round(100 * objective_s / step_s, 2),
    }


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "objective_overhead.csv")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.image_size, args.repeats, args.width = 16, 16, 1, 0.25
    stamp = {
        "machine": f"{describe_machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "backbone": "small_convnet" if args.quick else f"resnet18 x{args.width} (CIFAR stem)",
    }
    rows = [{**measure(m, args), **stamp} for m in (args.methods or list_methods())]
    write_rows(args.out, rows)
    print(f"{stamp}\n{'method':14s} {'step ms':>9s} {'objective ms':>13s} {'share %':>8s}")
    for r in rows:
        print(f"{r['method']:14s} {r['step_ms']:9.1f} {r['objective_ms']:13.2f} {r['objective_share_pct']:8.2f}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])

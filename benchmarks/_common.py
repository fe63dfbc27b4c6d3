"""What the benchmark scripts share (``from _common import ...``: each script runs with this folder on sys.path): the machine stamp on every row, a process's peak memory, the CSV
writer, and the options of the CIFAR training benchmarks."""

from __future__ import annotations

import argparse
import os
from typing import Callable
import platform
from pathlib import Path


def describe_machine() -> str:
    """CPU model, architecture and CPU count, e.g. 'AMD EPYC 7B13 (x86_64, 2 CPUs)'.

    ``platform.processor()`` is empty on most Linux systems, so the model comes from /proc/cpuinfo.
    """
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or 'unknown CPU'} ({platform.machine()}, {os.cpu_count()} CPUs)"


def reset_peak_memory() -> None:
    """Reset the kernel's peak-RSS counter of this process (Linux), so each measured run reports its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux, or not allowed: peak_memory_mb falls back to the process-wide peak
        pass


def peak_memory_mb() -> float:
    """Peak resident memory (VmHWM) since the last :func:`reset_peak_memory`, in MiB.

    Falls back to ``ru_maxrss`` (the process's peak since it started) where /proc is missing.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # the kernel reports kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def write_rows(path: Path, rows: list[dict], fieldnames: list[str] | None = None) -> None:
    """Write benchmark rows as CSV (creating the folder); columns default to the first row's keys.

    Atomic (a temporary file, then a rename): a run killed while writing keeps the previous file.
    """
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)


def run_each(methods: list[str], run_one: Callable[[str], dict], out: Path, stamp: dict) -> list[dict]:
    """``run_one(method)`` for each method in turn, printing each row and rewriting ``out`` (rows + ``stamp``)
    after each one, so a crash keeps the rows already done. Returns the rows without the stamp."""
    rows: list[dict] = []
    for method in methods:
        rows.append(run_one(method))
        print(rows[-1], flush=True)
        write_rows(out, [{**row, **stamp} for row in rows])
    return rows


def data_overrides(dataset: str, root: object, images: int | None, eval_images: int | None) -> list[str]:
    """The ``data.*`` overrides every CIFAR benchmark builds: root (unless digits) and subset sizes."""
    overrides = [] if dataset == "digits" else [f"data.root={root}"]
    if images is not None:
        overrides.append(f"data.max_train_images={images}")
    if eval_images is not None:
        overrides.append(f"data.max_eval_images={eval_images}")
    return overrides


# The CIFAR-10 copy next to the repository (../shared/data): the training benchmarks' default data.
CIFAR_COPY = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def cifar_benchmark_parser(
    description: str | None, quick_help: str, out: Path, runs: Path,
    images: int | None = None, eval_images: int | None = None,
) -> argparse.ArgumentParser:
    """The options every CIFAR training benchmark takes; each script adds its own after these.

    --quick, --methods, --root, --images / --eval-images (seeded subsets; None: all), --set
    (key=value overrides for every preset), --out (the CSV) and --runs (the run folders).
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--methods", nargs="*", default=None, help="subset of presets (default: all)")
    parser.add_argument("--root", default=str(CIFAR_COPY), help="CIFAR-10 folder or the .tar.gz copy")
    parser.add_argument("--images", type=int, default=images,
                        help=f"train on a seeded subset (default: {images or 'all 50k'})")
    parser.add_argument("--eval-images", type=int, default=eval_images,
                        help=f"test subset (default: {eval_images or 'all 10k'})")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every preset")
    parser.add_argument("--out", type=Path, default=out, help=f"CSV to write (default {out})")
    parser.add_argument("--runs", type=Path, default=runs, help=f"run folders (default {runs})")
    return parser


def method_overrides(method: str, batch_size: int, projector_out: int, quick: bool) -> list[str]:
    """What one method needs under a protocol shared by all of them.

    The quick mode's small heads give SimSiam and BYOL a 16-wide predictor. W-MSE whitens windows
    of 128 rows, which must divide the batch and exceed the embedding dimension: smaller batches
    whiten the whole batch, and an embedding as wide as the window is halved.
    """
    overrides = []
    if quick and method in ("simsiam", "byol"):
        overrides.append("model.predictor_hidden=16")
    if method == "w_mse":
        window = 128 if batch_size % 128 == 0 else batch_size
        overrides.append(f"method.objective=wmse(w_size={window}):1")
        if projector_out >= window:
            overrides.append(f"model.projector_out={window // 2}")
    return overrides

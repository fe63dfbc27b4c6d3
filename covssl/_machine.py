"""One line describing this machine, stamped on every benchmark row."""

from __future__ import annotations

import os
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


def write_rows(path: Path, rows: list[dict], fieldnames: list[str] | None = None) -> None:
    """Write benchmark rows as CSV (creating the folder); columns default to the first row's keys."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def data_overrides(dataset: str, root: object, images: int | None, eval_images: int | None) -> list[str]:
    """The ``data.*`` overrides every CIFAR benchmark builds: root (unless digits) and subset sizes."""
    overrides = [] if dataset == "digits" else [f"data.root={root}"]
    if images is not None:
        overrides.append(f"data.max_train_images={images}")
    if eval_images is not None:
        overrides.append(f"data.max_eval_images={eval_images}")
    return overrides

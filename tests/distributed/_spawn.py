"""Run a function on two gloo processes (CPU) and bring each rank's result back to the test.

``torch.multiprocessing.spawn`` starts the ranks; they meet through a file store in the test's
temporary folder (no port to pick, nothing left behind) and save their results with
``torch.save``. The function runs inside an initialized process group of world size 2, so the
code under test sees exactly what it sees under torchrun.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def _entry(rank: int, worker: Callable[[int, Any], Any], folder: str, payload: Any) -> None:
    torch.set_num_threads(1)  # two ranks share the test machine's cores
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=WORLD)
    try:
        result = worker(rank, payload)
        torch.save(result, Path(folder) / f"rank{rank}.pt")
    finally:
        # as covssl.distributed.process_group does: free what still holds gloo work (reference
        # cycles) while the group is alive, or the interpreter's exit can abort the process
        gc.collect()
        dist.destroy_process_group()


def run_on_two_ranks(worker: Callable[[int, Any], Any], folder: Path, payload: Any) -> list[Any]:
    """``worker(rank, payload)`` on ranks 0 and 1; returns [result of rank 0, result of rank 1].

    ``worker`` must be a module-level function (it is pickled by name into the new processes).
    """
    folder.mkdir(parents=True, exist_ok=True)
    mp.spawn(_entry, args=(worker, str(folder), payload), nprocs=WORLD, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

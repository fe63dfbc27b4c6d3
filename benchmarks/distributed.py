"""Benchmark: training-step time of 1 process vs 2 processes (torchrun, gloo) on this machine.

One step is what the training loop does: augment this rank's share of the global batch ->
backbone/projector (DDP, global BatchNorm) -> objective with gathered embeddings -> backward
(DDP all-reduces the gradients) -> optimizer step -> the per-step all-reduce of the logged
numbers. Images are synthetic uint8 (no data loading is timed). Each configuration runs in a
fresh process group launched by torchrun (one process: a plain subprocess), after warm-up
steps; the median over timed steps (then over interleaved rounds) is reported, plus the time
of the communication alone: the gather of both views' embeddings and an all-reduce of a
gradient-sized buffer.

Rows: 1 process x 1 thread, 1 process x 2 threads (both cores, intra-op parallelism), and
2 processes x 1 thread (both cores, data parallelism).

    .venv/bin/python benchmarks/distributed.py            # 3 interleaved rounds, ~3 minutes on 2 cores
    .venv/bin/python benchmarks/distributed.py --quick    # tiny model, a few seconds of steps
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import describe_machine, write_rows

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "distributed.csv"
COLUMNS = [
    "world_size", "threads_per_process", "global_batch", "local_batch", "dim", "params", "step_ms_median",
    "step_ms_min", "images_per_s", "speedup", "gather_bytes_per_rank", "gather_ms", "grad_bytes",
    "grad_allreduce_ms", "load_avg", "machine", "torch", "threads", "date",
]  # fmt: skip
FULL = {"backbone": "small_convnet", "width": 0.5, "hidden": 1024, "dim": 1024, "batch": 128, "steps": 12, "warmup": 3}
QUICK = {"backbone": "small_convnet", "width": 0.25, "hidden": 64, "dim": 32, "batch": 16, "steps": 2, "warmup": 1}


_machine = describe_machine  # the one machine stamp every benchmark shares


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def worker(setting: dict, threads: int, result_path: Path) -> None:
    """One rank: time the loop's step inside a torchrun process group; rank 0 writes JSON."""
    from covssl import distributed

    torch.set_num_threads(threads)
    with distributed.process_group(torch.device("cpu")):
        result = _measure(setting, threads)  # returns: the model is freed before the group is destroyed
        if distributed.is_main_process():
            result_path.write_text(json.dumps(result))


def _measure(setting: dict, threads: int) -> dict:
    import torch.distributed as dist

    from covssl import distributed
    from covssl.augment import TwoViewAugment
    from covssl.resolve import load_config
    from covssl.methods.model import build_model
    from covssl.models.global_batchnorm import convert_sync_batchnorm
    from covssl.train.randomness import augment_generator
    from covssl.train.optim import build_optimizer, scaled_lr

    device = torch.device("cpu")
    overrides = [
        f"model.backbone={setting['backbone']}", f"model.width={setting['width']}",
        f"model.projector_hidden=[{setting['hidden']}]", f"model.projector_out={setting['dim']}",
        f"train.batch_size={setting['batch']}",
    ]  # fmt: skip
    config = load_config(None, overrides)  # VICReg: mse + variance + covariance on the gathered batch
    batch = config.train.batch_size
    torch.manual_seed(0)
    model = build_model(config)
    wrapped: torch.nn.Module = model
    if distributed.is_distributed():
        model = convert_sync_batchnorm(model, device)  # type: ignore[assignment]
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
    augment = TwoViewAugment(config.augment)
    optimizer = build_optimizer(model, config.optim, scaled_lr(config.optim, batch))
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    local = images[distributed.local_rows(batch)]

    def step(index: int) -> None:
        view1, view2 = augment(local, generator=augment_generator(0, index), rows=distributed.local_rows(batch), global_batch=batch)
        output, _ = wrapped(view1, view2)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        distributed.mean_over_ranks(output.as_floats())

    times = []
    for index in range(setting["warmup"] + setting["steps"]):
        distributed.barrier()  # every rank starts the step together: rank 0's time is the step's
        started = time.perf_counter()
        step(index)
        times.append(time.perf_counter() - started)
    times = times[setting["warmup"] :]
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    z = torch.randn(len(local), setting["dim"])
    gather_ms = _median_ms(lambda: (distributed.gather(z), distributed.gather(z)), 20)
    grads = torch.zeros(params)
    allreduce_ms = _median_ms(lambda: dist.all_reduce(grads), 10) if distributed.is_distributed() else 0.0
    world = distributed.world_size()
    return {
        "world_size": world,
        "threads_per_process": threads,
        "global_batch": batch,
        "local_batch": len(local),
        "dim": setting["dim"],
        "params": params,
        "step_ms_median": round(1000 * statistics.median(times), 2),
        "step_ms_min": round(1000 * min(times), 2),
        "images_per_s": round(batch / statistics.median(times), 1),
        # received by each rank per step: both views' (B_local, d) float32 from every other rank
        "gather_bytes_per_rank": 2 * len(local) * setting["dim"] * 4 * (world - 1),
        "gather_ms": round(gather_ms, 3) if world > 1 else 0.0,
        "grad_bytes": params * 4,
        "grad_allreduce_ms": round(allreduce_ms, 3),
    }


def _launch(world: int, threads: int, setting: dict, folder: Path) -> dict:
    """Run ``worker`` in fresh processes: torchrun for several ranks, a plain subprocess for one."""
    result = folder / f"w{world}-t{threads}.json"
    args = [str(Path(__file__).resolve()), "--worker", json.dumps(setting), str(threads), str(result)]
    if world > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}", *args]
    else:
        command = [sys.executable, *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(command, env=env, cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(result.read_text())


def run(quick: bool, rounds: int) -> list[dict[str, object]]:
    """Every configuration once per round, rounds interleaved (a load change hits all alike)."""
    setting = QUICK if quick else FULL
    configurations = [(1, 1), (2, 1)] if quick else [(1, 1), (1, 2), (2, 1)]
    common = {
        "machine": _machine(),
        "torch": torch.__version__,
        "threads": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    runs: dict[tuple[int, int], list[dict]] = {c: [] for c in configurations}
    loads = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for world, threads in configurations:
                runs[(world, threads)].append(_launch(world, threads, setting, Path(folder)))
                loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
    rows = []
    for measured in runs.values():
        row = dict(measured[0])
        for key in ("step_ms_median", "gather_ms", "grad_allreduce_ms"):  # median over rounds
            row[key] = round(statistics.median(m[key] for m in measured), 3)
        row["step_ms_min"] = min(m["step_ms_min"] for m in measured)
        row["images_per_s"] = round(1000 * row["global_batch"] / row["step_ms_median"], 1)
        # 1-minute load average over the run: above the core count, other processes shared the CPU
        row["load_avg"] = round(statistics.mean(loads), 2)
        rows.append(row | common)
    baseline = rows[0]["step_ms_median"]
    for row in rows:
        row["speedup"] = round(baseline / row["step_ms_median"], 2)  # vs 1 process x 1 thread
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    print(f"\nstep time, global batch {rows[0]['global_batch']}, d = {rows[0]['dim']}, {rows[0]['params']} parameters")
    print(f"{'processes x threads':>20} {'step ms':>9} {'images/s':>9} {'speedup':>8} {'gather ms':>10} {'grad all-reduce ms':>19}")
    for r in rows:
        label = f"{r['world_size']} x {r['threads_per_process']}"
        print(
            f"{label:>20} {r['step_ms_median']:>9} {r['images_per_s']:>9} {r['speedup']:>8} "
            f"{r['gather_ms']:>10} {r['grad_allreduce_ms']:>19}"
        )


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and 2 timed steps, for the tests")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"CSV to write (default {DEFAULT_OUT})")
    parser.add_argument("--rounds", type=int, default=None, help="runs of each configuration (default 3, quick 1)")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if rounds < 1:
        parser.error(f"--rounds: expected >= 1, got {rounds}")
    rows = run(args.quick, rounds)
    write_rows(args.out, rows, COLUMNS)
    print_table(rows)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
        # The group is destroyed and the result written: skip interpreter finalization, where gloo
        # occasionally aborts a worker ("terminate called without an active exception", SIGABRT),
        # which torchrun would report as a failed benchmark.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    else:
        main()

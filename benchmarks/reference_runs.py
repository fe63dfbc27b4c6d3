"""Per-step losses of short seeded runs, recorded once and compared after every change.

A refactor of the training code must not change what an existing configuration computes. This
script trains the reference runs (each in its own ``covssl train`` process, one torch thread)
and writes every logged per-step number of each run's ``steps.csv`` to a JSON file:

- ``digits``: the offline default, 2 epochs, a row per step;
- ``method-<name>``: one epoch of every registered method on the offline default;
- ``cifar10``: one epoch of ``cifar10/cpu_fast`` on a 512-image subset, in fp32 (``fastest`` would
  choose by timing, which is not reproducible), when a CIFAR-10 copy is given.

    .venv/bin/python benchmarks/reference_runs.py --record benchmarks/results/reference_runs.json --cifar PATH
    .venv/bin/python benchmarks/reference_runs.py --compare benchmarks/results/reference_runs.json --cifar PATH

``--compare`` exits 1 and names the first differing number when any run differs. The numbers are
exact on the machine that recorded them; another CPU may round differently, so record a new file
there before the change being checked (``git stash``, record, ``git stash pop``, compare).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

COMMON = ["train.log_every=1", "eval.baselines=false", "train.progress=false", "data.max_eval_images=64"]
# W-MSE whitens windows of 128 rows, which needs d < 128: the offline default's projector is 512 wide
METHOD_EXTRAS = {"w_mse": ["model.projector_out=64"]}


def reference_runs(cifar: str | None) -> dict[str, list[str]]:
    """Run name -> the ``covssl train`` arguments of that run (the output folder is added later)."""
    from covssl.methods import list_methods

    runs = {"digits": ["train.epochs=2", *COMMON]}
    for method in list_methods():
        runs[f"method-{method}"] = [f"method.name={method}", "train.epochs=1", *METHOD_EXTRAS.get(method, []), *COMMON]
    if cifar is not None:
        runs["cifar10"] = [
            "-c", "cifar10/cpu_fast", f"data.root={cifar}", "data.max_train_images=512", "train.epochs=1",
            "train.precision=fp32", "eval.linear_probe=false", "train.knn_every=0", *COMMON,
        ]
    return runs


def run_one(arguments: list[str], out_dir: Path) -> list[dict[str, str]]:
    """Train one reference run in a child process and return the rows of its ``steps.csv``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "covssl", "train", *arguments, f"train.out_dir={out_dir}", "--overwrite"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    with open(out_dir / "steps.csv", newline="") as handle:
        return [{k: v for k, v in row.items()} for row in csv.DictReader(handle)]


def record(cifar: str | None, only: list[str] | None) -> dict[str, list[dict[str, str]]]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="covssl-reference-") as scratch:
        for name, arguments in reference_runs(cifar).items():
            if only and name not in only:
                continue
            results[name] = run_one(arguments, Path(scratch) / name)
            print(f"{name}: {len(results[name])} steps, last loss {results[name][-1]['loss']}", flush=True)
    return results


def differences(expected: dict[str, list[dict[str, str]]], actual: dict[str, list[dict[str, str]]]) -> list[str]:
    """What differs between two recordings, one line per run that differs (empty: identical)."""
    lines = []
    for name, rows in actual.items():
        if name not in expected:
            lines.append(f"{name}: not in the reference file")
            continue
        if len(rows) != len(expected[name]):
            lines.append(f"{name}: {len(rows)} steps, the reference has {len(expected[name])}")
            continue
        for want, got in zip(expected[name], rows):
            changed = [k for k in want if want[k] != got.get(k)]
            if changed:
                key = changed[0]
                lines.append(f"{name}: step {want['step']} {key} = {got.get(key)}, the reference has {want[key]}")
                break
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", type=Path, help="write the reference file")
    mode.add_argument("--compare", type=Path, help="compare against a reference file")
    parser.add_argument("--cifar", default=None, help="CIFAR-10 folder or .tar.gz copy (adds the cifar10 run)")
    parser.add_argument("--only", nargs="*", default=None, help="run names to train (default: all)")
    args = parser.parse_args(argv)
    results = record(args.cifar, args.only)
    if args.record is not None:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.record}")
        return 0
    problems = differences(json.loads(args.compare.read_text()), results)
    for line in problems:
        print(line)
    print("identical" if not problems else f"{len(problems)} of {len(results)} runs differ")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

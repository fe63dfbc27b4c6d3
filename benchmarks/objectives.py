"""Benchmark: covssl's covariance regularizers (path="auto") against the papers' d x d code.

Regularizers: coding rate, covariance penalty, Barlow Twins, Taylor coding rate, FroSSL, MEC,
Matrix-SSL, VIbCReg's correlation penalty, the von Neumann entropy and W2-uniformity.

For each regularizer, dtype and (B, d) it times forward + backward of

* auto:  the covssl function with path="auto" (B x B Gram via Sylvester's identity when B < d);
* naive: the d x d computation of the reference code, written out here: torch.logdet of
  I_d + a Z^T Z for the coding rate, an explicit d x d covariance / cross-correlation with an
  off-diagonal mask for VICReg, Barlow Twins and VIbCReg, S = Z^T Z / B for the Taylor surrogate,
  d x d matrix powers for MEC and Matrix-SSL, eigenvalues of the d x d matrix for the entropy
  and for W2-uniformity's tr Sigma^(1/2);

checks that both give the same value (rel_diff column), takes the median of at least 3 repeats
after one warm-up run (more for cheap points; auto and naive take turns, so CPU contention hits
both alike), writes a CSV and prints the speed-ups.

    .venv/bin/python benchmarks/objectives.py            # full grid, several minutes on a CPU
    .venv/bin/python benchmarks/objectives.py --quick    # tiny grid, a few seconds
    .venv/bin/python benchmarks/objectives.py --clock cpu --threads 1   # on a shared machine
    .venv/bin/python benchmarks/objectives.py --points 512x4096,256x8192  # part of the grid
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from _common import describe_machine, write_rows
from covssl.linalg import use_sample_side
from covssl.objectives.barlow_twins import barlow_twins_loss
from covssl.objectives.rate_distortion import coding_rate, taylor_coding_rate
from covssl.objectives.frossl import frossl_loss
from covssl.objectives.matrix_ssl import matrix_ssl_loss
from covssl.objectives.mec import mec_loss
from covssl.objectives.vibcreg import correlation_penalty
from covssl.objectives.vicreg import covariance_penalty
from covssl.objectives.vne import von_neumann_entropy
from covssl.objectives.wasserstein_uniformity import w2_uniformity

EPS_CODING = 0.5  # coding-rate distortion, SimDINO's default
LAMBD = 0.0051  # Barlow Twins off-diagonal weight
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "objectives.csv"
COLUMNS = [
    "regularizer", "dtype", "B", "d", "auto_path", "auto_ms", "naive_ms", "speedup", "rel_diff",
    "clock", "load_avg", "machine", "torch", "threads", "date",
]  # fmt: skip

# ---------------------------------------------------------------- the d x d reference code


def _offdiag_mask(dim: int, like: torch.Tensor) -> torch.Tensor:
    return 1.0 - torch.eye(dim, dtype=like.dtype, device=like.device)  # (d, d)


def naive_coding_rate(z: torch.Tensor) -> torch.Tensor:
    batch, dim = z.shape
    alpha = dim / (batch * EPS_CODING**2)
    gram = z.T @ z  # (d, B) @ (B, d) -> (d, d)
    return 0.5 * torch.logdet(torch.eye(dim, dtype=z.dtype) + alpha * gram)


def naive_taylor_coding_rate(z: torch.Tensor) -> torch.Tensor:
    batch, dim = z.shape
    a = dim / EPS_CODING**2
    s = z.T @ z / batch  # (d, B) @ (B, d) -> (d, d)
    return 0.5 * (a * torch.trace(s) - 0.5 * a**2 * (s * s).sum())


def naive_covariance_penalty(z: torch.Tensor) -> torch.Tensor:
    batch, dim = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (batch - 1)  # (d, B) @ (B, d) -> (d, d)
    return (cov * _offdiag_mask(dim, cov)).pow(2).sum() / dim


def naive_barlow_twins(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    batch, dim = z1.shape
    z1n = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + 1e-5)
    z2n = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + 1e-5)
    c = z1n.T @ z2n / batch  # (d, B) @ (B, d) -> (d, d)
    on = (torch.diagonal(c) - 1).pow(2).sum()
    return on + LAMBD * (c * _offdiag_mask(dim, c)).pow(2).sum()


def naive_frossl(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    views = [F.normalize(z, dim=0) for z in (z1, z2)]  # unit-norm columns
    mean = sum(views) / 2
    regularizer = invariance = 0.0
    for zn in views:
        k = zn.T @ zn  # (d, B) @ (B, d) -> (d, d)
        regularizer = regularizer + torch.log((k / torch.trace(k)).square().sum())
        invariance = invariance + 2 * zn.shape[1] * (zn - mean).square().mean()
    return regularizer + invariance


def _taylor_trace_log(c: torch.Tensor, order: int = 4) -> torch.Tensor:
    power, total = torch.eye(c.shape[0], dtype=c.dtype), c.new_zeros(())
    for k in range(1, order + 1):
        power = power @ c  # (d, d) @ (d, d)
        total = total + (-1) ** (k + 1) * torch.trace(power) / k
    return total


def naive_mec(z1: torch.Tensor, z2: torch.Tensor, eps: float = 64.0) -> torch.Tensor:
    batch, dim = z1.shape
    c = dim / (batch * eps) * F.normalize(z1, dim=1).T @ F.normalize(z2, dim=1)  # (d, d)
    return -(eps / dim) * _taylor_trace_log(c)


def naive_matrix_ssl(z1: torch.Tensor, z2: torch.Tensor, lambd=0.5, mu=0.5, gamma=1.0) -> torch.Tensor:
    batch, dim = z1.shape
    x1, x2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    eye = torch.eye(dim, dtype=z1.dtype)

    def log_t(q: torch.Tensor) -> torch.Tensor:  # Taylor series of the matrix log around I
        power, total = eye, torch.zeros_like(q)
        for k in range(1, 5):
            power = power @ (q - eye)  # (d, d) @ (d, d)
            total = total + (-1) ** (k + 1) * power / k
        return total

    def cov(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return (p - p.mean(0)).T @ (z - z.mean(0)) / batch  # (d, B) @ (B, d) -> (d, d)

    def corr(p, z):
        return -lambd * torch.trace(log_t(cov(p, z) + mu * eye))

    def unif(p, z):
        return -torch.trace((cov(p, p) + mu * eye) @ log_t(cov(z, z) + mu * eye))

    return 0.5 * (corr(x2, x1) + corr(x1, x2) + gamma * (unif(x2, x1) + unif(x1, x2)))


def naive_correlation_penalty(z: torch.Tensor) -> torch.Tensor:
    zc = z - z.mean(0)
    zn = zc / zc.norm(dim=0)
    r = zn.T @ zn  # (d, B) @ (B, d) -> (d, d)
    return (r * _offdiag_mask(z.shape[1], r)).pow(2).sum() / z.shape[1] ** 2


def naive_von_neumann_entropy(z: torch.Tensor) -> torch.Tensor:
    zn = F.normalize(z, dim=1)
    eigenvalues = torch.linalg.eigvalsh(zn.T @ zn / z.shape[0]).clamp_min(1e-30)  # of a (d, d) matrix
    return -(eigenvalues * eigenvalues.log()).sum()


def naive_w2_uniformity(z: torch.Tensor) -> torch.Tensor:
    zn = F.normalize(z, dim=1)
    mu = zn.mean(0)
    sigma = (zn - mu).T @ (zn - mu) / z.shape[0]  # (d, B) @ (B, d) -> (d, d), biased
    root_trace = torch.linalg.eigvalsh(sigma).clamp_min(0).sqrt().sum()
    value = mu.square().sum() + 1 + torch.trace(sigma) - 2 / z.shape[1] ** 0.5 * root_trace
    return value.clamp_min(0).sqrt()


# (name, auto, naive, number of views)
REGULARIZERS: list[tuple[str, Callable[..., torch.Tensor], Callable[..., torch.Tensor], int]] = [
    ("coding_rate", lambda z: coding_rate(z, EPS_CODING, "auto"), naive_coding_rate, 1),
    ("covariance_penalty", lambda z: covariance_penalty(z, "auto"), naive_covariance_penalty, 1),
    ("barlow_twins_loss", lambda a, b: barlow_twins_loss(a, b, LAMBD, path="auto")["loss"], naive_barlow_twins, 2),
    ("taylor_coding_rate", lambda z: taylor_coding_rate(z, EPS_CODING, "auto"), naive_taylor_coding_rate, 1),
    ("frossl_loss", lambda a, b: frossl_loss([a, b])["loss"], naive_frossl, 2),
    ("mec_loss", lambda a, b: mec_loss(a, b)["loss"], naive_mec, 2),
    ("matrix_ssl_loss", lambda a, b: matrix_ssl_loss(a, b)["loss"], naive_matrix_ssl, 2),
    ("correlation_penalty", correlation_penalty, naive_correlation_penalty, 1),
    ("von_neumann_entropy", von_neumann_entropy, naive_von_neumann_entropy, 1),
    ("w2_uniformity", w2_uniformity, naive_w2_uniformity, 1),
]

# ---------------------------------------------------------------- timing


def _inputs(batch: int, dim: int, views: int, dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(batch * 100_003 + dim)
    base = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    # l2-normalized rows, as SimDINO feeds the coding rate; the second view is a noisy copy.
    first = F.normalize(base, dim=1)
    second = F.normalize(base + 0.5 * torch.randn(batch, dim, generator=gen, dtype=torch.float64), dim=1)
    return [first.to(dtype), second.to(dtype)][:views]


def time_forward_backward(
    fns: list[Callable[..., torch.Tensor]],
    inputs: list[torch.Tensor],
    repeats: int,
    budget_s: float,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Median time in ms of fn(*inputs).backward() for each fn, after one warm-up run.

    At least ``repeats`` timed runs; cheap points get more (up to 50, within ``budget_s`` seconds),
    because a median of 3 millisecond runs on a shared CPU is mostly noise. The functions take
    turns within each round, so a busy CPU slows them alike. ``clock=time.process_time`` counts
    this process's CPU seconds (summed over threads) instead of wall time: the robust choice
    when other jobs share the machine.
    """

    def one_round() -> list[float]:
        elapsed = []
        for fn in fns:
            leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
            start = clock()
            fn(*leaves).backward()
            elapsed.append((clock() - start) * 1e3)
        return elapsed

    warmup = one_round()
    rounds = max(repeats, min(50, int(budget_s * 1e3 / max(sum(warmup), 1e-3))))
    times = [one_round() for _ in range(rounds)]
    return [statistics.median(t[i] for t in times) for i in range(len(fns))]


_machine = describe_machine  # the one machine stamp every benchmark shares


def grid(quick: bool) -> list[tuple[torch.dtype, int, int]]:
    """(dtype, B, d) points; float64 skips d = 8192, where one naive d x d log-det run takes ~1 min."""
    if quick:
        return [(dt, b, d) for dt in (torch.float32, torch.float64) for b in (16, 32) for d in (24, 64)]
    points = [(b, d) for b in (256, 512, 1024) for d in (512, 2048, 8192)] + [(512, 4096)]
    return [(torch.float32, b, d) for b, d in points] + [(torch.float64, b, d) for b, d in points if d <= 4096]


def run(
    quick: bool,
    repeats: int,
    budget_s: float,
    clock: str = "wall",
    only: set[tuple[int, int]] | None = None,
    regularizers: set[str] | None = None,
) -> list[dict[str, object]]:
    timer = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    common = {
        "clock": clock,
        "machine": _machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    rows = []
    for dtype, batch, dim in grid(quick):
        if only is not None and (batch, dim) not in only:
            continue
        for name, auto_fn, naive_fn, views in REGULARIZERS:
            if regularizers is not None and name not in regularizers:
                continue
            inputs = _inputs(batch, dim, views, dtype)
            with torch.no_grad():
                auto_value, naive_value = auto_fn(*inputs).item(), naive_fn(*inputs).item()
            rel_diff = abs(auto_value - naive_value) / max(abs(naive_value), 1e-30)
            auto_ms, naive_ms = time_forward_backward([auto_fn, naive_fn], inputs, repeats, budget_s, timer)
            row = {
                "regularizer": name,
                "dtype": str(dtype).removeprefix("torch."),
                "B": batch,
                "d": dim,
                "auto_path": "sample" if use_sample_side(batch, dim) else "feature",
                "auto_ms": round(auto_ms, 3),
                "naive_ms": round(naive_ms, 3),
                "speedup": round(naive_ms / auto_ms, 2),
                "rel_diff": f"{rel_diff:.1e}",
                # 1-minute load average: above the thread count, other processes shared the CPU.
                "load_avg": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else "",
            } | common
            rows.append(row)
            print(
                f"{name:>20} {row['dtype']:>8} B={batch:<5} d={dim:<5} {row['auto_path']:>7} "
                f"auto {auto_ms:10.2f} ms  naive {naive_ms:10.2f} ms  x{naive_ms / auto_ms:7.2f}  "
                f"rel_diff {rel_diff:.1e}  load {row['load_avg']}",
                flush=True,
            )
    return rows


def print_ratio_table(rows: list[dict[str, object]]) -> None:
    """Speed-up naive/auto, one line per (regularizer, dtype), one column per (B, d)."""
    points = sorted({(int(r["B"]), int(r["d"])) for r in rows})
    header = f"{'speedup naive/auto':<30}" + "".join(f"{f'{b}x{d}':>11}" for b, d in points)
    print("\n" + header + "\n" + "-" * len(header))
    for name in dict.fromkeys(str(r["regularizer"]) for r in rows):
        for dtype in dict.fromkeys(str(r["dtype"]) for r in rows):
            cells = {(r["B"], r["d"]): r["speedup"] for r in rows if r["regularizer"] == name and r["dtype"] == dtype}
            line = "".join(f"{cells[p]:>11}" if p in cells else f"{'-':>11}" for p in points)
            print(f"{name + ' ' + dtype:<30}{line}")


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny grid (a few seconds), for the tests")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"CSV to write (default {DEFAULT_OUT})")
    parser.add_argument("--repeats", type=int, default=None, help="least timed runs per point (default 3, quick 2)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time, robust when the machine is shared",
    )
    parser.add_argument("--points", default=None, help="only these (B, d) of the grid, e.g. 512x4096,256x8192")
    parser.add_argument("--only", default=None, help="only these regularizers, comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads: expected >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 3)
    if repeats < 1:
        parser.error(f"--repeats: expected >= 1, got {repeats}")
    only = None
    if args.points:
        try:
            only = {(int(b), int(d)) for b, d in (p.split("x") for p in args.points.split(","))}
        except ValueError:
            parser.error(f"--points: expected comma-separated BxD such as 512x4096, got {args.points!r}")
        known = {(b, d) for _, b, d in grid(args.quick)}
        if not only <= known:
            parser.error(f"--points: expected points of the grid {sorted(known)}, got {sorted(only - known)}")
    names = [name for name, *_ in REGULARIZERS]
    chosen = args.only.split(",") if args.only else names
    if not set(chosen) <= set(names):
        parser.error(f"--only: expected names among {names}, got {sorted(set(chosen) - set(names))}")
    rows = run(args.quick, repeats, 0.05 if args.quick else 2.0, args.clock, only, set(chosen))
    write_rows(args.out, rows, COLUMNS)
    print_ratio_table(rows)
    print(f"\nwrote {len(rows)} rows to {args.out}")
    return rows


if __name__ == "__main__":
    main()

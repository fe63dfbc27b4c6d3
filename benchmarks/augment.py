"""Two-view augmentation throughput: covssl's batched TwoViewAugment vs a per-image PIL pipeline.

    .venv/bin/python benchmarks/augment.py [--quick] [--out PATH] [--threads N ...] [--mallopt] [--append]

Same 32 x 32 uint8 images (CIFAR-10 test JPEGs when ../shared/data/cifar10-jpeg.tar.gz exists,
smooth synthetic images otherwise), same recipe, same cores, same run, for batch sizes 64, 256
and 512. The recipe is VICReg's CIFAR preset with the paper's blur probabilities (1.0 / 0.1)
put back, so every operation runs: crop, flip, colour jitter, grayscale, blur, solarize,
normalize. Pipelines:

* ``pil``: what a torchvision/DataLoader pipeline does per image, written here with PIL only:
  crop + resize, transpose, ImageEnhance (brightness, contrast, colour), hue via HSV, convert("L"),
  GaussianBlur, ImageOps.solarize, to float tensor, normalize, then stack. With N threads it
  runs in N worker processes (as N DataLoader workers would), so both sides get the same cores.
* ``covssl``: ``TwoViewAugment`` on the uint8 batch with ``torch.set_num_threads(N)``.
* ``kornia``: the same recipe as a chain of ``kornia.augmentation`` modules (reference point).

N runs over 1 and the machine's core count: on a loaded machine, torch's intra-op threads
wait on each other at every op (dozens per view), so 1 thread can beat 2; the CSV records the
load average and OMP_WAIT_POLICY (PASSIVE avoids most of that waiting).

Timings alternate the pipelines, repeat, and keep the median, because the machine is shared.
Images/s counts source images (each gives two views). ``--mallopt`` stops glibc from handing
freed multi-MB tensors back to the OS (a page fault storm on every call otherwise).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import math
import multiprocessing as mp
import os
import random
import statistics
import tarfile
import time
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from _common import describe_machine
from covssl.augment import AugmentConfig, TwoViewAugment, ViewConfig, augment_preset
from covssl.augment.ops import blur_kernel_size

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def recipe() -> AugmentConfig:
    cfg = augment_preset("byol", image_size=32, dataset="cifar10")
    cfg.view1.blur_prob, cfg.view2.blur_prob = 1.0, 0.1  # the paper's values: exercise the blur too
    return cfg


def load_images(count: int, path: Path) -> np.ndarray:
    """(count, 32, 32, 3) uint8: every 7th CIFAR-10 JPEG of the tarball, or smooth noise."""
    images: list[np.ndarray] = []
    if path.exists():
        with tarfile.open(path, "r:gz") as tar:
            for i, member in enumerate(m for m in tar if m.name.endswith(".jpg")):
                if i % 7 == 0:
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
                if len(images) == count:
                    return np.stack(images)
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(count, 3, 8, 8, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    return (smooth * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ----------------------------------------------------------------------------- PIL pipeline
def _pil_box(rng: random.Random, size: int, view: ViewConfig) -> tuple[int, int, int, int]:
    """torchvision RandomResizedCrop.get_params on a square size x size image."""
    for _ in range(10):
        area = size * size * rng.uniform(*view.crop_scale)
        aspect = math.exp(rng.uniform(math.log(view.crop_ratio[0]), math.log(view.crop_ratio[1])))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= size and 0 < h <= size:
            top, left = rng.randint(0, size - h), rng.randint(0, size - w)
            return left, top, left + w, top + h
    return 0, 0, size, size


def _pil_hue(img: Image.Image, shift: float) -> Image.Image:
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(shift * 255)) % 256  # uint8 hue wraps
    return Image.fromarray(hsv, "HSV").convert("RGB")


def pil_view(img: Image.Image, view: ViewConfig, cfg: AugmentConfig, rng: random.Random) -> np.ndarray:
    size = cfg.image_size
    img = img.resize((size, size), Image.BILINEAR, box=_pil_box(rng, img.width, view))
    if rng.random() < view.hflip_prob:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < view.jitter_prob:
        def factor(strength: float) -> float:
            return rng.uniform(max(0.0, 1 - strength), 1 + strength)

        steps = [
            lambda im: ImageEnhance.Brightness(im).enhance(factor(view.brightness)),
            lambda im: ImageEnhance.Contrast(im).enhance(factor(view.contrast)),
            lambda im: ImageEnhance.Color(im).enhance(factor(view.saturation)),
            lambda im: _pil_hue(im, rng.uniform(-view.hue, view.hue)),
        ]
        rng.shuffle(steps)
        for step in steps:
            img = step(img)
    if rng.random() < view.grayscale_prob:
        img = img.convert("L").convert("RGB")
    if rng.random() < view.blur_prob:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(*view.blur_sigma)))
    if rng.random() < view.solarize_prob:
        img = ImageOps.solarize(img, 128)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255)  # (3, size, size)
    mean = torch.tensor(cfg.mean).view(3, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1)
    return x.sub_(mean).div_(std).numpy()


_WORKER: dict[str, object] = {}


def _pil_init(images: np.ndarray, cfg: AugmentConfig) -> None:
    torch.set_num_threads(1)
    _WORKER["images"], _WORKER["cfg"] = images, cfg


def _pil_chunk(args: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    start, stop, seed = args
    images, cfg = _WORKER["images"], _WORKER["cfg"]
    rng = random.Random(seed)
    v1, v2 = [], []
    for a in images[start:stop]:  # type: ignore[index]
        img = Image.fromarray(a)
        v1.append(pil_view(img, cfg.view1, cfg, rng))  # type: ignore[union-attr, arg-type]
        v2.append(pil_view(img, cfg.view2, cfg, rng))  # type: ignore[union-attr, arg-type]
    return np.stack(v1), np.stack(v2)


def pil_two_views(
    images: np.ndarray, pool: Pool | None, workers: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both views of every image, split over ``workers`` processes like DataLoader workers."""
    bounds = np.linspace(0, len(images), workers + 1).astype(int)
    chunks = [(int(a), int(b), seed + i) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    parts = pool.map(_pil_chunk, chunks) if pool is not None else [_pil_chunk(c) for c in chunks]
    view1 = np.concatenate([p[0] for p in parts])  # (batch, 3, size, size)
    view2 = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(view1), torch.from_numpy(view2)


# ----------------------------------------------------------------------------- kornia pipeline
def kornia_views(cfg: AugmentConfig) -> list[torch.nn.Module] | None:
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    views = []
    for v in (cfg.view1, cfg.view2):
        ops: list[torch.nn.Module] = [
            K.RandomResizedCrop((cfg.image_size, cfg.image_size), scale=tuple(v.crop_scale), ratio=tuple(v.crop_ratio)),
            K.RandomHorizontalFlip(p=v.hflip_prob),
            K.ColorJitter(v.brightness, v.contrast, v.saturation, v.hue, p=v.jitter_prob),
            K.RandomGrayscale(p=v.grayscale_prob),
        ]
        if v.blur_prob > 0:
            k = blur_kernel_size(cfg.image_size)
            ops.append(K.RandomGaussianBlur((k, k), tuple(v.blur_sigma), p=v.blur_prob))
        if v.solarize_prob > 0:
            ops.append(K.RandomSolarize(0.0, 0.0, p=v.solarize_prob))  # threshold exactly 0.5
        ops.append(K.Normalize(mean=torch.tensor(cfg.mean), std=torch.tensor(cfg.std)))
        views.append(torch.nn.Sequential(*ops))
    return views


# ----------------------------------------------------------------------------- driver
machine = describe_machine  # the one machine stamp every benchmark shares


def measure(threads: int, sizes: tuple[int, ...], repeats: int, images: np.ndarray, mallopt: bool) -> list[dict]:
    """One row per (batch size, pipeline) with ``threads`` torch threads and as many PIL workers."""
    torch.set_num_threads(threads)
    cfg = recipe()
    batch_u8 = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32) uint8
    covssl_aug = TwoViewAugment(cfg)
    korn = kornia_views(cfg)
    pipelines = {
        "pil": lambda b, pool: pil_two_views(images[:b], pool, threads, seed=b),
        "covssl": lambda b, pool: covssl_aug(batch_u8[:b]),
    }
    if korn is not None:
        pipelines["kornia"] = lambda b, pool: tuple(v(batch_u8[:b].float().div(255)) for v in korn)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ctx.Pool(threads, _pil_init, (images, cfg)) if threads > 1 else None
    if pool is None:
        _pil_init(images, cfg)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    rows = []
    try:
        for b in sizes:
            times: dict[str, list[float]] = {name: [] for name in pipelines}
            for name, run in pipelines.items():  # warm-up (and a shape check)
                v1, v2 = run(b, pool)
                if not v1.shape == v2.shape == (b, 3, cfg.image_size, cfg.image_size):
                    raise RuntimeError(f"{name}: views of shape {tuple(v1.shape)}, {tuple(v2.shape)}")
            for _ in range(repeats):  # interleaved, so load spikes hit every pipeline alike
                for name, run in pipelines.items():
                    start = time.perf_counter()
                    run(b, pool)
                    times[name].append(time.perf_counter() - start)
            pil_rate = b / statistics.median(times["pil"])
            for name, ts in times.items():
                rate = b / statistics.median(ts)
                rows.append(
                    {
                        "date": stamp,
                        "machine": machine(),
                        "torch": torch.__version__,
                        "pillow": PIL.__version__,
                        "threads": threads,
                        "mallopt": mallopt,
                        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                        "loadavg_1m": round(os.getloadavg()[0], 2),
                        "batch_size": b,
                        "pipeline": name,
                        "images_per_s": round(rate, 1),
                        "ms_per_batch_median": round(1e3 * statistics.median(ts), 3),
                        "ms_per_batch_min": round(1e3 * min(ts), 3),
                        "speedup_vs_pil": round(rate / pil_rate, 2),
                    }
                )
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "augment.csv")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}), help="torch threads = PIL workers"
    )
    parser.add_argument("--data", type=Path, default=DATA, help="CIFAR-10 JPEG tarball (synthetic if absent)")
    parser.add_argument("--mallopt", action="store_true", help="keep freed memory in glibc's heap (Linux)")
    parser.add_argument("--append", action="store_true", help="add rows to an existing CSV instead of replacing it")
    args = parser.parse_args()
    if args.mallopt:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: never give the heap top back
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: serve up to 32 MB from the heap, not mmap
    sizes, repeats = ((16, 32), 2) if args.quick else ((64, 256, 512), 9)
    images = load_images(max(sizes), args.data)
    rows = [row for t in args.threads for row in measure(t, sizes, repeats, images, args.mallopt)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    append = args.append and args.out.exists()
    with open(args.out, "a" if append else "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if not append:
            writer.writeheader()
        writer.writerows(rows)
    print(f"{rows[0]['machine']} | torch {torch.__version__} | mallopt={args.mallopt} | load {os.getloadavg()[0]:.1f}")
    print(f"{'threads':>7} {'batch':>6} {'pipeline':>9} {'images/s':>10} {'ms/batch':>9} {'vs PIL':>7}")
    for r in rows:
        print(
            f"{r['threads']:>7} {r['batch_size']:>6} {r['pipeline']:>9} {r['images_per_s']:>10.0f} "
            f"{r['ms_per_batch_median']:>9.2f} {r['speedup_vs_pil']:>6.2f}x"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

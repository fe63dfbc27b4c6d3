"""The small training loop the experiments share: a tiny model on real images, probed as it trains.

The experiments compare *objectives* (and SimSiam's architectural ablations), so everything
else is held fixed: the same backbone (``small_convnet``), projector, data order, augmentations,
optimizer and step count. Unlike :func:`covssl.train.train` this loop builds models the run
configuration cannot describe (a predictor replaced by the identity, a term without its
stop-gradient) and evaluates a *fixed* batch every few steps, so the curves of different runs
are measured on the same images.

Probing: the fixed batch goes through the model in train mode (BatchNorm normalizes with the
batch's own statistics, as the loss sees it) with the running statistics frozen, so probing
does not change the model.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from covssl.augment import EvalTransform, TwoViewAugment, augment_preset
from covssl.data import ImageArrayDataset, load_dataset, prepare_cifar10_copy
from covssl.diagnostics import center_residual, effective_rank, std_of_normalized
from covssl.evaluate import encode, knn_accuracy
from covssl.methods import get_method
from covssl.methods.model import SSLModel
from covssl.models import Predictor, Projector, create_backbone
from covssl.objectives import Objective
from covssl.train.step import NonFiniteLossError, StepParts, train_step


@dataclass(frozen=True)
class TinySetup:
    """Everything the runs of one experiment share (defaults: the full-size experiment)."""

    image_size: int = 16  # digits (8 x 8 scans) lose nothing at 16 px; 4x fewer pixels than 32
    width: float = 0.5  # small_convnet channels (16, 32, 64)
    hidden: int = 128  # projector hidden width
    dim: int = 64  # embedding dimension d
    predictor_hidden: int = 32  # SimSiam-style bottleneck: d / 2 here, d / 4 in the paper
    last_batch_norm: bool = False  # non-affine BN on the projector output
    batch: int = 128
    steps: int = 400
    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adamw"; constant lr after a short warm-up
    lr: float = 0.05
    weight_decay: float = 5e-4
    probe_every: int = 20  # steps between evaluations of the fixed batch
    probe_size: int = 256  # images in the fixed probe batch (from the test split)
    knn_bank: int = 1000  # training images in the kNN bank (0: no kNN)
    knn_k: int = 20
    seed: int = 0


def free_cores() -> int:
    """Cores not already busy: the usable CPUs minus the 1-minute load average, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, min(cores, cores - busy))


def torch_threads(threads: int | None) -> int:
    """Use ``threads`` torch threads (None or 0: :func:`free_cores`); returns the number used.

    Why not always every core: the experiments' models and matrices are small, and when the
    cores are shared each torch thread waits for the others at every operation. Measured on a
    2-core machine with other jobs running: ``isotropy`` took 65 s with 2 threads, 6.5 s with 1.
    """
    count = threads or free_cores()
    torch.set_num_threads(count)
    return count


def load_images(dataset: str, root: str | None, split: str, image_size: int) -> ImageArrayDataset:
    """A dataset's split as uint8 images at ``image_size`` (digits: offline; cifar10: ``root``)."""
    if dataset == "cifar10" and root is None:
        raise ValueError("data_root: the cifar10 experiment data needs --data-root (folder or .tar.gz copy)")
    if root is not None and str(root).endswith((".tar.gz", ".tgz", ".tar")):
        root = str(prepare_cifar10_copy(root))  # extracted once into the cache, like covssl train does
    return load_dataset(dataset, root=root, split=split, image_size=image_size, progress=False)


def build_tiny_model(
    setup: TinySetup, objective: Objective, predictor: nn.Module | None | str = "auto"
) -> SSLModel:
    """small_convnet + projector (+ predictor) around ``objective``.

    Args:
        setup: widths and dimensions.
        objective: the loss.
        predictor: "auto" adds a bottleneck predictor when the objective needs predictions;
            an nn.Module (e.g. nn.Identity() for SimSiam without predictor) is used as given.
    """
    torch.manual_seed(setup.seed)  # the same initial weights for every run of an experiment
    backbone = create_backbone("small_convnet", width=setup.width)
    projector = Projector(backbone.out_dim, [setup.hidden], setup.dim, last_batch_norm=setup.last_batch_norm)
    if predictor == "auto":
        predictor = Predictor(setup.dim, setup.predictor_hidden) if objective.needs_predictions else None
    return SSLModel(backbone, projector, objective, predictor)  # type: ignore[arg-type]


@contextlib.contextmanager
def frozen_batchnorm(model: nn.Module) -> Iterator[None]:
    """Train-mode forward passes that leave BatchNorm's running statistics unchanged."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in norms]
    try:
        for m in norms:
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
            m.train()
        yield
    finally:
        for m, (momentum, training) in zip(norms, saved):
            m.momentum = momentum
            m.train(training)


@torch.no_grad()
def probe(model: SSLModel, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(backbone features, projector embeddings z) of preprocessed images, train-mode BN, frozen stats."""
    with frozen_batchnorm(model):
        feats = model.backbone(images)  # (N, out_dim)
        return feats, model.projector(feats)  # (N, d)


def collapse_metrics(z: torch.Tensor) -> dict[str, float]:
    """The three collapse indicators the experiments plot: std of z/||z||, erank, ||o||/||r||."""
    return {
        "std_of_normalized": std_of_normalized(z),
        "effective_rank": effective_rank(z),
        "center_residual_ratio": center_residual(z)["center_residual_ratio"],
    }


def knn_score(
    model: SSLModel, bank: ImageArrayDataset, test: ImageArrayDataset, transform: nn.Module, k: int
) -> float:
    """Weighted kNN top-1 (T = 0.1) of the backbone's eval-mode features: bank labels vote for the test images."""
    device = torch.device("cpu")
    bank_feats = encode(model.backbone, bank.images, transform, device, 512)
    test_feats = encode(model.backbone, test.images, transform, device, 512)
    labels = (torch.as_tensor(bank.labels, dtype=torch.long), torch.as_tensor(test.labels, dtype=torch.long))
    return knn_accuracy(bank_feats, labels[0], test_feats, labels[1], bank.num_classes, k=k, temperature=0.1)


def make_optimizer(model: nn.Module, setup: TinySetup) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 (SimSiam's optimizer) or AdamW (insensitive to the loss scale)."""
    if setup.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=setup.lr, momentum=0.9, weight_decay=setup.weight_decay)
    if setup.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=setup.lr, weight_decay=setup.weight_decay)
    raise ValueError(f"optimizer: expected 'sgd' or 'adamw', got {setup.optimizer!r}")


@dataclass
class RunData:
    """The images an experiment trains and probes on."""

    train: ImageArrayDataset
    test: ImageArrayDataset
    augment: TwoViewAugment
    transform: EvalTransform
    probe_images: torch.Tensor  # (probe_size, 3, S, S) float, preprocessed


def prepare_data(
    setup: TinySetup, dataset: str = "digits", root: str | None = None, method: str = "simsiam"
) -> RunData:
    """Train/test splits, the method's augmentations for ``dataset`` and the fixed probe batch."""
    train = load_images(dataset, root, "train", setup.image_size)
    test = load_images(dataset, root, "test", setup.image_size)
    config = augment_preset(get_method(method).views, image_size=setup.image_size, dataset=dataset)
    transform = EvalTransform(config)
    chosen = torch.randperm(len(test), generator=torch.Generator().manual_seed(setup.seed))[: setup.probe_size]
    images, _ = test.__getitems__(sorted(chosen.tolist()))
    return RunData(train, test, TwoViewAugment(config), transform, transform(images))


def train_and_probe(model: SSLModel, data: RunData, setup: TinySetup) -> dict[str, Any]:
    """Train ``model`` for ``setup.steps`` optimizer steps, probing the fixed batch every ``probe_every``.

    Every run with the same setup sees the same batches and augmentations (seeded generators).

    Args:
        model: the model to train, in place.
        data: training images, augmentations and the probe batch (:func:`prepare_data`).
        setup: steps, batch, optimizer, probing and kNN settings.

    Returns:
        {"history": [{"step", "loss", <collapse_metrics of the probe batch's z>}],
         "final": the last history row plus "knn_top1" (if setup.knn_bank) and "seconds"}.
    """
    started = time.perf_counter()
    optimizer = make_optimizer(model, setup)
    warmup = max(1, setup.steps // 20)
    order = torch.Generator().manual_seed(setup.seed + 1)
    views = torch.Generator().manual_seed(setup.seed + 2)
    history: list[dict[str, float]] = []
    loss = math.nan

    def record(step: int) -> None:
        _, z = probe(model, data.probe_images)
        history.append({"step": float(step), "loss": loss, **collapse_metrics(z)})

    model.train()
    record(0)
    parts = StepParts(model, model, optimizer, torch.amp.GradScaler("cpu", enabled=False), amp_dtype=None,
                      term_keys=["loss", *(t.name for t in model.objective.term_specs)])
    for step in range(1, setup.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = setup.lr * min(1.0, step / warmup)
        idx = torch.randint(len(data.train), (setup.batch,), generator=order)
        images, _ = data.train.__getitems__(idx.tolist())
        try:
            result = train_step(parts, lambda: data.augment(images, generator=views), where=f"at step {step}")
        except NonFiniteLossError as error:
            raise FloatingPointError(f"{error} ({model.objective.spec})") from None
        loss = result.values["loss"]
        if step % setup.probe_every == 0 or step == setup.steps:
            record(step)
    final = dict(history[-1])
    if setup.knn_bank:
        # a seeded random subset: ImageFolder trees (CIFAR) are sorted by class, so the first N would be one class
        chosen = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(setup.seed))
        bank = data.train.subset(chosen[: setup.knn_bank].sort().values.numpy())
        final["knn_top1"] = knn_score(model, bank, data.test, data.transform, setup.knn_k)
    final["seconds"] = time.perf_counter() - started
    return {"history": history, "final": final}

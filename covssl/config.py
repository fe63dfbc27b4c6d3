"""Typed run configuration: one dataclass per concern, every default with a comment.

This module is the schema: the dataclasses, YAML in and out, and the value checks
(:func:`validate`). It knows no method: :func:`covssl.resolve.load_config`, one layer above the
methods, merges the layers (defaults -> the method's defaults -> a YAML file -> ``key=value``
overrides) and checks the method and its objective.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from covssl.augment import AugmentConfig, validate_augment_config
from covssl.data import list_datasets
from covssl.models import list_backbones


def choice(default: str, *choices: str) -> Any:
    """A string field that takes one of ``choices``: checked by :func:`validate`, listed by ``covssl config``."""
    if default not in choices:
        raise ValueError(f"choice: the default {default!r} is not one of {choices}")
    return field(default=default, metadata={"choices": choices})


@dataclass
class DataConfig:
    dataset: str = "digits"  # digits (offline default) | cifar10 | cifar100 | imagefolder
    root: Optional[str] = None  # folder of cifar10/cifar100/imagefolder data
    download: bool = False  # fetch CIFAR's official archive when missing (needs internet)
    cache_dir: Optional[str] = None  # decoded-image cache; default $COVSSL_CACHE or ~/.cache/covssl
    max_train_images: Optional[int] = None  # train on a seeded subset (quick runs, tests)
    max_eval_images: Optional[int] = None  # evaluate on a seeded subset of the test split


@dataclass
class ModelConfig:
    backbone: str = "resnet18"  # any name of covssl.models.list_backbones(), or timm:<name>
    width: float = 0.25  # channel multiplier (1.0 = the paper's ResNet); 0.25 runs on a CPU
    cifar_stem: bool = True  # 3x3 stride-1 stem, no max-pool (small images)
    projector_hidden: list[int] = field(default_factory=lambda: [512, 512])  # Linear-BN-ReLU widths
    projector_out: int = 512  # embedding dimension d
    projector_last_bn: bool = False  # BN on the output (SimSiam)
    predictor_hidden: int = 0  # >0 adds a SimSiam/BYOL predictor with this bottleneck width
    ema_momentum: Optional[float] = None  # BYOL-style EMA target (base momentum, cosine to 1)
    sync_batchnorm: bool = True  # under torch.distributed: projector/backbone BN over the global batch


@dataclass
class MethodConfig:
    name: str = "vicreg"  # a name of `covssl methods`
    objective: Optional[str] = None  # spec string replacing the method's objective, e.g. "mse:25 + coding_rate:1"


@dataclass
class OptimConfig:
    optimizer: str = choice("lars", "sgd", "lars", "adamw")  # SGD with momentum, LARS (VICReg, Barlow Twins), AdamW
    lr: float = 0.3  # base learning rate for a batch of `lr_reference_batch` images
    lr_scaling: str = choice("linear", "linear", "sqrt", "none")  # lr = base * scale(global_batch / reference)
    lr_reference_batch: int = 256  # the papers' convention
    weight_decay: float = 1e-4  # L2 penalty (decoupled for AdamW); biases and norms excluded if asked
    momentum: float = 0.9  # SGD/LARS momentum
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW
    lars_eta: float = 0.02  # LARS trust coefficient (VICReg/Barlow use 0.02 with exclusion)
    exclude_bias_and_norm: bool = True  # no weight decay / LARS adaptation on biases and norms
    warmup_epochs: float = 10.0  # linear warm-up, then cosine decay
    final_lr_ratio: float = 0.0  # cosine decays to lr * final_lr_ratio
    grad_clip: Optional[float] = None  # clip the global gradient norm


@dataclass
class TrainConfig:
    epochs: int = 100  # training epochs (the most a time budget may plan)
    batch_size: int = 256  # global batch (split across ranks under torch.distributed)
    seed: int = 0  # model init, data order and augmentations are pure functions of it
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = choice("auto", "auto", "fp32", "bf16", "fp16", "fastest")  # auto: bf16 autocast on CUDA, fp32
    #   on CPU; fastest: times fp32 and bf16 for a few steps and trains in the faster (covssl/train/precision.py)
    channels_last: bool = False  # NHWC memory format for conv nets: 1.4x on CPU, 2.3x with bf16 (AVX512-BF16)
    out_dir: str = "runs/default"  # the run folder
    log_every: int = 10  # steps between per-step CSV rows
    knn_every: int = 0  # epochs between kNN evaluations (0: only at the end)
    keep_checkpoints: int = 2  # how many epoch checkpoints to keep
    on_nonfinite: str = choice("stop", "stop", "skip")  # what a NaN/inf loss or gradient does: stop the run, or skip the step
    max_steps: Optional[int] = None  # stop after this many steps (tests, smoke runs)
    time_budget_minutes: Optional[float] = None  # fit the whole run (baselines, training, evaluations) into this
    #   wall time: epochs = the most, up to train.epochs, that measured step times allow (covssl/train/budget.py)
    progress: bool = True  # progress bar on the terminal


@dataclass
class EvalConfig:
    knn_k: int = 200  # neighbours (Wu et al. 2018 protocol)
    knn_temperature: float = 0.1  # similarity temperature of the weighted vote
    image_size: Optional[int] = None  # side of the evaluated images; None: augment.image_size. Larger than
    # the training crops is better (FixRes, Touvron et al. 2019): 32 after 24-px crops gives +1.8 kNN points
    linear_probe: bool = False  # also train a linear classifier on frozen features at the end
    baselines: bool = True  # also score the random-init encoder and raw pixels (one extra pass at the start)
    linear_epochs: int = 100  # linear-probe training epochs on the frozen features
    batch_size: int = 512  # images per evaluation forward pass
    patches: int = 0  # >0: an image's features are the mean over this many training-augmented views (EMP-SSL)
    probe_images: int = 1000  # label-free metrics (LiDAR, RankMe) on this many training images; 0: none
    probe_views: int = 8  # augmented views of each probe image (LiDAR's samples of one image), >= 2


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


CONFIG_DIR = Path(__file__).parent / "configs"


def shipped_configs() -> dict[str, Path]:
    """The YAML configs that ship with covssl, by name (e.g. 'cifar10/vicreg')."""
    return {str(p.relative_to(CONFIG_DIR).with_suffix("")): p for p in sorted(CONFIG_DIR.rglob("*.yaml"))}


def merge_layer(base: DictConfig, layer: Any, source: str) -> DictConfig:
    """Merge one layer (a dict, a YAML file's contents, dotlist overrides) into ``base``.

    An error names the layer, the key and the problem in one line (OmegaConf's own message
    continues with its internal reference types).
    """
    try:
        return OmegaConf.merge(base, layer)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        message = str(getattr(error, "msg", None) or error).strip().splitlines()[0]
        key = getattr(error, "full_key", None)
        raise ValueError(f"{source}: {key}: {message}" if key else f"{source}: {message}") from None


def to_yaml(config: RunConfig) -> str:
    """The resolved configuration as YAML (saved in every run folder)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def from_yaml(text: str) -> RunConfig:
    """Inverse of :func:`to_yaml`."""
    merged = merge_layer(OmegaConf.structured(RunConfig), OmegaConf.create(text), "saved config")
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def _choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")


def _positive(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0):  # inf passes `> 0` but is never a usable setting
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")


def _validate_names(config: RunConfig) -> None:
    """Dataset, backbone and augmentation: checked now, not an hour into a run (the method and its
    objective are checked by :func:`covssl.resolve.load_config`, which knows the methods)."""
    _choice(config.data.dataset, tuple(list_datasets()), "data.dataset")
    backbone = config.model.backbone
    if not (backbone in list_backbones() or (backbone.startswith("timm:") and len(backbone) > len("timm:"))):
        raise ValueError(f"model.backbone: expected one of {list_backbones()} or 'timm:<name>', got {backbone!r}")
    try:
        validate_augment_config(config.augment)
    except ValueError as error:
        raise ValueError(f"augment.{error}") from None


def validate(config: RunConfig) -> None:
    """Check values that types alone cannot (ranges, choices); raise ValueError naming the key."""
    for section in fields(config):  # the keys declared with choice(...)
        values = getattr(config, section.name)
        for key in fields(values):
            if "choices" in key.metadata:
                _choice(getattr(values, key.name), key.metadata["choices"], f"{section.name}.{key.name}")
    _positive(config.optim.lr, "optim.lr")
    _positive(config.optim.lr_reference_batch, "optim.lr_reference_batch")
    _positive(config.train.batch_size, "train.batch_size")
    _positive(config.train.epochs, "train.epochs")
    _positive(config.model.width, "model.width")
    _positive(config.model.projector_out, "model.projector_out")
    _positive(config.eval.knn_k, "eval.knn_k")
    _positive(config.eval.knn_temperature, "eval.knn_temperature")
    if config.eval.image_size is not None:
        _positive(config.eval.image_size, "eval.image_size")
    _positive(config.train.keep_checkpoints, "train.keep_checkpoints")
    if config.train.batch_size < 2:
        raise ValueError(f"train.batch_size: expected at least 2 (covariance needs 2 samples), got {config.train.batch_size}")
    for name, value in (("optim.weight_decay", config.optim.weight_decay), ("optim.warmup_epochs", config.optim.warmup_epochs)):
        if value < 0:
            raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
    if not 0 <= config.optim.momentum < 1:
        raise ValueError(f"optim.momentum: expected a number in [0, 1), got {config.optim.momentum!r}")
    if not 0 <= config.optim.final_lr_ratio <= 1:
        raise ValueError(f"optim.final_lr_ratio: expected a number in [0, 1], got {config.optim.final_lr_ratio!r}")
    if config.model.ema_momentum is not None and not 0 <= config.model.ema_momentum <= 1:
        raise ValueError(f"model.ema_momentum: expected a number in [0, 1], got {config.model.ema_momentum!r}")
    if config.optim.grad_clip is not None:
        _positive(config.optim.grad_clip, "optim.grad_clip")
    if config.train.max_steps is not None:
        _positive(config.train.max_steps, "train.max_steps")
    if config.train.time_budget_minutes is not None:
        _positive(config.train.time_budget_minutes, "train.time_budget_minutes")
    if any(h <= 0 for h in config.model.projector_hidden):
        raise ValueError(f"model.projector_hidden: expected positive widths, got {config.model.projector_hidden}")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", config.train.device):
        raise ValueError(f"train.device: expected auto, cpu, cuda, cuda:N or mps, got {config.train.device!r}")
    if not str(config.train.out_dir).strip():
        raise ValueError("train.out_dir: expected a folder path, got an empty string")
    _positive(config.train.log_every, "train.log_every")
    _positive(config.eval.batch_size, "eval.batch_size")
    if isinstance(config.eval.patches, bool) or not isinstance(config.eval.patches, int) or config.eval.patches < 0:
        raise ValueError(f"eval.patches: expected an integer >= 0, got {config.eval.patches!r}")
    _positive(config.eval.linear_epochs, "eval.linear_epochs")
    for name, least in (("probe_images", 0), ("probe_views", 2)):
        value = getattr(config.eval, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"eval.{name}: expected an integer >= {least}, got {value!r}")
    _positive(config.optim.lars_eta, "optim.lars_eta")
    for name, value in (("train.seed", config.train.seed), ("train.knn_every", config.train.knn_every),
                        ("model.predictor_hidden", config.model.predictor_hidden)):
        if value < 0:  # seeds feed numpy's default_rng, which rejects negative ones
            raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
    if len(config.optim.betas) != 2 or not all(0 <= b < 1 for b in config.optim.betas):
        raise ValueError(f"optim.betas: expected two numbers in [0, 1), got {list(config.optim.betas)}")
    for name, size in (("data.max_train_images", config.data.max_train_images),
                       ("data.max_eval_images", config.data.max_eval_images)):
        if size is not None and size < 1:
            raise ValueError(f"{name}: expected a number of images >= 1 (or null for all), got {size}")
    if config.data.max_train_images is not None and config.train.batch_size > config.data.max_train_images:
        raise ValueError(
            f"train.batch_size: {config.train.batch_size} is larger than the training set "
            f"(data.max_train_images={config.data.max_train_images})"
        )
    if config.data.dataset == "imagefolder" and not config.data.root:
        raise ValueError("data.root: the imagefolder dataset needs data.root=<folder with one subfolder per class>")
    _validate_names(config)

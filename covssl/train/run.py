"""What the phases of a training run share: the run being trained, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from covssl import distributed
from covssl.augment import TwoViewAugment
from covssl.config import RunConfig
from covssl.methods.model import SSLModel
from covssl.train.data import Splits
from covssl.train.evaluation import KnnEvaluator, QualityProbe
from covssl.train.step import StepParts, Views


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    step: int
    knn: dict[str, float] = field(default_factory=dict)  # trained / random_init / raw_pixels
    linear_probe: float | None = None
    images_per_second: float = 0.0
    epochs: int = 0  # planned epochs (train.epochs, or what train.time_budget_minutes allowed)
    precision: str = ""  # what the network trained in (train.precision=fastest resolves to fp32 or bf16)
    wall_seconds: float = 0.0  # the whole run, data loading and evaluations included
    label_free: dict[str, float] = field(default_factory=dict)  # the probe's metrics of the final model


@dataclass
class Run:
    """What the phases share: built by :func:`~covssl.train.setup.setup`, completed by :func:`~covssl.train.setup.start`."""

    config: RunConfig
    device: torch.device
    run_dir: Path
    splits: Splits
    model: SSLModel
    augment: TwoViewAugment
    memory_format: torch.memory_format
    began: float  # perf_counter at the start of the run
    parts: StepParts | None = None
    evaluator: KnnEvaluator | None = None
    probe: QualityProbe | None = None  # rank 0, when eval.probe_images > 0
    peak_lr: float = 0.0
    main: bool = field(default_factory=distributed.is_main_process)
    resumed: bool = False  # started from a checkpoint (it keeps its stored plan)
    step_seconds: dict[str, float] = field(default_factory=dict)  # one step per precision timed
    knn_seconds: float | None = None  # one kNN pass, when measured

    @property
    def global_batch(self) -> int:
        return self.config.train.batch_size

    @property
    def steps_per_epoch(self) -> int:
        return len(self.splits.train) // self.global_batch

    def views(self, images: torch.Tensor, generator: torch.Generator) -> Views:
        """This rank's views of its rows ``images`` of a global batch, in the run's layout."""
        views = self.augment(images, generator=generator, rows=distributed.local_rows(self.global_batch),
                             global_batch=self.global_batch)
        return tuple(v.contiguous(memory_format=self.memory_format) for v in views)

    def probe_metrics(self) -> dict[str, float]:
        """The probe's label-free metrics of the current model (empty without a probe)."""
        if self.probe is None or not self.probe.enabled:
            return {}
        return self.probe.metrics(self.model.backbone, self.model.projector)

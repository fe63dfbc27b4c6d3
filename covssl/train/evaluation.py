"""Evaluation during and after training: kNN and linear probe on frozen backbone features."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from covssl.augment import EvalTransform, TwoViewAugment
from covssl.config import EvalConfig, RunConfig
from covssl.diagnostics import lidar, rankme
from covssl.diagnostics.quality import RANKME_SAMPLES
from covssl.evaluate.features import PatchBag, encode, encode_views, raw_pixels
from covssl.evaluate.knn import knn_accuracy
from covssl.evaluate.linear import linear_probe_accuracy
from covssl.train.data import Splits


def eval_transform(config: RunConfig) -> EvalTransform | PatchBag:
    """The evaluation transform of a run: images resized to ``eval.image_size``, or a bag of patches.

    Defaults to the training crops' side (``augment.image_size``). Evaluating at a larger side
    than the crops were trained at compensates for RandomResizedCrop's zoom (Touvron et al.,
    2019, "Fixing the train-test resolution discrepancy", arXiv 1906.06423). With
    ``eval.patches`` > 0 each image is that many views of the first training recipe, and its
    features their mean (EMP-SSL).
    """
    size = config.eval.image_size or config.augment.image_size
    if config.eval.patches > 0:
        views = replace(config.augment, image_size=size, global_crops=config.eval.patches, local_crops=0,
                        view2=config.augment.view1)
        return PatchBag(TwoViewAugment(views), seed=config.train.seed)
    return EvalTransform(replace(config.augment, image_size=size))


class KnnEvaluator:
    """Encodes the evaluation bank (train split) and queries (test split) and scores them."""

    def __init__(self, splits: Splits, transform: nn.Module, device: torch.device, config: EvalConfig) -> None:
        self.splits = splits
        self.transform = transform
        self.device = device
        self.config = config
        self.bank_labels = torch.as_tensor(splits.bank.labels, dtype=torch.long)
        self.query_labels = torch.as_tensor(splits.test.labels, dtype=torch.long)

    def _features(self, encoder: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        bank = encode(encoder, self.splits.bank.images, self.transform, self.device, self.config.batch_size)
        queries = encode(encoder, self.splits.test.images, self.transform, self.device, self.config.batch_size)
        return bank.cpu(), queries.cpu()

    def _score(self, bank: torch.Tensor, queries: torch.Tensor) -> float:
        return knn_accuracy(
            bank, self.bank_labels, queries, self.query_labels, self.splits.num_classes,
            self.config.knn_k, self.config.knn_temperature,
        )

    def knn(self, encoder: nn.Module) -> float:
        """kNN top-1 accuracy of an encoder's features (k, T from the eval config)."""
        return self._score(*self._features(encoder))

    def knn_raw_pixels(self) -> float:
        """kNN top-1 accuracy on raw pixels: the baseline that needs no learning at all."""
        return self._score(raw_pixels(self.splits.bank.images), raw_pixels(self.splits.test.images))

    def knn_and_probe(self, encoder: nn.Module, probe_epochs: int | None) -> tuple[float, float | None]:
        """kNN top-1 and, unless ``probe_epochs`` is None, linear-probe top-1 (L-BFGS, deterministic).

        Both are scored on one encoding of the two splits: the probe costs no second pass.
        """
        bank, queries = self._features(encoder)
        knn = self._score(bank, queries)
        if probe_epochs is None:
            return knn, None
        probe = linear_probe_accuracy(
            bank, self.bank_labels, queries, self.query_labels, self.splits.num_classes, epochs=probe_epochs
        )
        return knn, probe


class QualityProbe:
    """Label-free quality metrics of a fixed subset of the training images, V augmented views each.

    ``eval.probe_images`` training images (a seeded subset, the same all run long) are augmented
    ``eval.probe_views`` times with the run's global-view recipes (seeded: the same views at every
    evaluation) and encoded in eval mode. Each image is a class of LiDAR's surrogate task
    (Thilak et al. 2024) and its views the samples; RankMe (Garrido et al. 2023) reads all V x N
    rows (at most 25,600, the paper's sample size). Both are computed on the projector's
    embeddings (``probe_*``) and on the backbone's features (``probe_*_backbone``, what kNN and the
    linear probe see).
    """

    def __init__(self, splits: Splits, config: RunConfig, device: torch.device) -> None:
        train = splits.train
        count = min(config.eval.probe_images, len(train))
        chosen = np.random.default_rng(config.train.seed + 2).choice(len(train), size=count, replace=False)
        self.images = train.subset(np.sort(chosen)).images  # (n, H, W, 3) uint8
        views = replace(config.augment, global_crops=config.eval.probe_views, local_crops=0)
        self.augment = TwoViewAugment(views).to(device)
        self.device = device
        self.batch_size = config.eval.batch_size
        self.seed = config.train.seed

    @property
    def enabled(self) -> bool:
        return len(self.images) >= 2

    def metrics_inputs(self, backbone: nn.Module, projector: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The probe's backbone features (V, n, D) and projector embeddings (V, n, d)."""
        return encode_views(backbone, projector, self.images, self.augment, self.device, self.batch_size, self.seed)

    def metrics(self, backbone: nn.Module, projector: nn.Module) -> dict[str, float]:
        """probe_lidar, probe_rankme (projector) and probe_lidar_backbone, probe_rankme_backbone."""
        features, embeddings = self.metrics_inputs(backbone, projector)
        result = {}
        for suffix, views in (("", embeddings), ("_backbone", features)):
            result[f"probe_lidar{suffix}"] = lidar(views)
            result[f"probe_rankme{suffix}"] = rankme(views.reshape(-1, views.shape[-1])[:RANKME_SAMPLES])
        return result

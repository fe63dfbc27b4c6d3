"""Evaluation during and after training: kNN and linear probe on frozen backbone features."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from covssl.augment import EvalTransform, TwoViewAugment
from covssl.config import EvalConfig, RunConfig
from covssl.evaluate.features import PatchBag, encode, raw_pixels
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

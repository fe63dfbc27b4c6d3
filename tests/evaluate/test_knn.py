"""Weighted kNN against a brute-force loop written from the formula, and the linear probe."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from covssl.evaluate import knn_accuracy, knn_predict, linear_probe_accuracy


def _reference_knn(bank: np.ndarray, labels: np.ndarray, queries: np.ndarray, classes: int, k: int, t: float) -> list[int]:
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    out = []
    for q in queries:
        q = q / np.linalg.norm(q)
        sims = [(float(q @ f), int(y)) for f, y in zip(bank, labels)]
        sims.sort(key=lambda s: -s[0])
        votes = [0.0] * classes
        for sim, y in sims[:k]:
            votes[y] += math.exp(sim / t)
        out.append(int(np.argmax(votes)))
    return out


@pytest.mark.parametrize("k, temperature", [(1, 0.1), (5, 0.1), (20, 0.5), (200, 0.1)])
def test_knn_matches_the_formula(k: int, temperature: float) -> None:
    rng = np.random.default_rng(k)
    bank, queries = rng.normal(size=(60, 8)), rng.normal(size=(25, 8))
    labels = rng.integers(0, 4, 60)
    predicted = knn_predict(torch.tensor(bank), torch.tensor(labels), torch.tensor(queries), 4, k, temperature, chunk_size=7)
    assert predicted.tolist() == _reference_knn(bank, labels, queries, 4, min(k, 60), temperature)


def test_knn_is_perfect_on_separated_clusters_and_checks_shapes() -> None:
    centers = torch.eye(3) * 10
    bank = centers.repeat_interleave(10, 0) + 0.1 * torch.randn(30, 3)
    labels = torch.arange(3).repeat_interleave(10)
    assert knn_accuracy(bank, labels, centers, torch.arange(3), 3, k=5) == 1.0
    with pytest.raises(ValueError, match="same D"):
        knn_predict(bank, labels, torch.randn(2, 4), 3)
    with pytest.raises(ValueError, match="train_labels"):
        knn_predict(bank, labels[:5], centers, 3)


@pytest.mark.parametrize("method", ["lbfgs", "sgd"])
def test_linear_probe_separates_linearly_separable_classes(method: str) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 3, generator=g)
    x = torch.randn(1200, 16, generator=g)
    y = (x @ w).argmax(1)
    accuracy = linear_probe_accuracy(x[:1000], y[:1000], x[1000:], y[1000:], 3, method=method, epochs=50)
    assert accuracy > 0.9
    noise = torch.randint(0, 3, (1000,), generator=g)
    chance = linear_probe_accuracy(x[:1000], noise, x[1000:], y[1000:], 3, epochs=50)
    assert chance < 0.6  # labels that carry no signal cannot be probed


def test_a_bag_of_patches_is_the_mean_of_its_views_features_and_repeats() -> None:
    from covssl.augment import AugmentConfig, TwoViewAugment
    from covssl.evaluate.features import PatchBag, encode

    images = np.random.default_rng(0).integers(0, 256, size=(10, 16, 16, 3), dtype=np.uint8)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    bag = PatchBag(TwoViewAugment(AugmentConfig(image_size=8, global_crops=3)), seed=1)
    first = encode(encoder, images, bag, torch.device("cpu"), batch_size=4)
    assert first.shape == (10, 5)
    assert torch.equal(first, encode(encoder, images, bag, torch.device("cpu"), batch_size=4))  # same patches
    batch = torch.from_numpy(images[:4]).permute(0, 3, 1, 2)
    expected = sum(encoder(v) for v in bag(batch)) / 3
    torch.testing.assert_close(first[:4], expected)


def test_eval_patches_gives_a_bag_of_patches_transform() -> None:
    from covssl.resolve import load_config
    from covssl.train.evaluation import eval_transform
    from covssl.evaluate.features import PatchBag

    config = load_config(None, ["method.name=emp_ssl", "eval.patches=4"])
    transform = eval_transform(config)
    assert isinstance(transform, PatchBag) and transform.augment.num_views == 4
    with pytest.raises(ValueError, match="eval.patches: expected an integer >= 0"):
        load_config(None, ["eval.patches=-1"])

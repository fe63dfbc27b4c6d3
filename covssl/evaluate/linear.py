"""Linear probe: a linear classifier trained on frozen, precomputed features.

Features are standardized with the training set's mean and std, then a multinomial logistic
regression with L2 penalty is fitted either by full-batch L-BFGS (deterministic, fast for the
feature counts of CIFAR) or by mini-batch SGD with a cosine schedule.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _standardize(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def linear_probe_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    method: str = "lbfgs",
    weight_decay: float = 1e-4,
    epochs: int = 100,
    seed: int = 0,
) -> float:
    """Top-1 test accuracy (in [0, 1]) of a linear classifier on frozen features (N, D)."""
    if method not in ("lbfgs", "sgd"):
        raise ValueError(f"method: expected 'lbfgs' or 'sgd', got {method!r}")
    generator = torch.Generator().manual_seed(seed)
    x_train, x_test = _standardize(train_features.float().cpu(), test_features.float().cpu())
    y_train, y_test = train_labels.cpu(), test_labels.cpu()
    layer = torch.nn.Linear(x_train.shape[1], num_classes)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)

    def objective() -> torch.Tensor:
        return F.cross_entropy(layer(x_train), y_train) + weight_decay * layer.weight.pow(2).sum()

    if method == "lbfgs":
        optimizer = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=epochs, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        optimizer.step(closure)
    else:
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        batch = 256
        steps = epochs * math.ceil(x_train.shape[0] / batch)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        for _ in range(epochs):
            order = torch.randperm(x_train.shape[0], generator=generator)
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                loss = F.cross_entropy(layer(x_train[idx]), y_train[idx]) + weight_decay * layer.weight.pow(2).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
    with torch.no_grad():
        return float((layer(x_test).argmax(1) == y_test).float().mean())

"""Weighted k-nearest-neighbour classification on frozen features.

[0] Wu, Xiong, Yu, Lin 2018, "Unsupervised Feature Learning via Non-Parametric Instance
    Discrimination", https://arxiv.org/abs/1805.01978 (the k=200, T=0.1 protocol used by
    lightly, solo-learn and most SSL papers on CIFAR)

For a query q and its k most cosine-similar training features f_i with labels y_i:
    score(c) = sum_{i in topk} exp(cos(q, f_i) / T) * [y_i == c],   prediction = argmax_c score(c)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Predicted labels (Q,) for query features (Q, D) from a bank (N, D) with labels (N,)."""
    if train_features.ndim != 2 or query_features.ndim != 2 or train_features.shape[1] != query_features.shape[1]:
        raise ValueError(
            f"features: expected (N, D) and (Q, D) with the same D, got {tuple(train_features.shape)} "
            f"and {tuple(query_features.shape)}"
        )
    if train_labels.shape != (train_features.shape[0],):
        raise ValueError(f"train_labels: expected shape ({train_features.shape[0]},), got {tuple(train_labels.shape)}")
    if k < 1 or temperature <= 0:
        raise ValueError(f"k, temperature: expected k >= 1 and temperature > 0, got {k} and {temperature}")
    k = min(k, train_features.shape[0])
    bank = F.normalize(train_features.float(), dim=1)
    predictions = []
    for start in range(0, query_features.shape[0], chunk_size):
        queries = F.normalize(query_features[start : start + chunk_size].float(), dim=1)
        similarity = queries @ bank.T  # (q, D) @ (D, N) -> (q, N)
        top_sim, top_idx = similarity.topk(k, dim=1)  # (q, k)
        weights = (top_sim / temperature).exp()  # (q, k)
        votes = torch.zeros(queries.shape[0], num_classes, device=queries.device)
        votes.scatter_add_(1, train_labels[top_idx], weights)  # (q, C)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
) -> float:
    """Top-1 accuracy (in [0, 1]) of :func:`knn_predict` on labelled queries."""
    predicted = knn_predict(train_features, train_labels, test_features, num_classes, k, temperature)
    return float((predicted == test_labels).float().mean())

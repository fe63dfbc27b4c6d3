"""Embeddings with known covariance, built in numpy float64 for the diagnostics tests."""

from __future__ import annotations

import numpy as np


def centered_orthonormal(rng: np.random.Generator, batch: int, k: int) -> np.ndarray:
    """(batch, k) matrix with orthonormal columns that are orthogonal to the all-ones vector."""
    a = rng.normal(size=(batch, k))
    a -= a.mean(axis=0, keepdims=True)  # the column space of a centered matrix is orthogonal to 1
    q, _ = np.linalg.qr(a)
    return q


def rank_k(batch: int, dim: int, k: int, seed: int = 0, offset: float = 3.0) -> np.ndarray:
    """Batch whose covariance is W^T W with W (k, dim) orthonormal rows: k eigenvalues 1, rest 0.

    z = sqrt(B - 1) U W + offset * m with U (B, k) centered orthonormal columns and m a random
    mean vector (the covariance ignores it). Needs k <= min(B - 1, dim).
    """
    rng = np.random.default_rng(seed)
    u = centered_orthonormal(rng, batch, k)  # (B, k)
    w, _ = np.linalg.qr(rng.normal(size=(dim, k)))  # (d, k) orthonormal columns
    mean = offset * rng.normal(size=(1, dim))
    return np.sqrt(batch - 1) * u @ w.T + mean  # (B, k) @ (k, d) -> (B, d)


def whitened(batch: int, dim: int, seed: int = 0, offset: float = 3.0) -> np.ndarray:
    """Batch whose covariance is exactly the identity (needs batch - 1 >= dim)."""
    return rank_k(batch, dim, dim, seed, offset)


def gaussian(batch: int, dim: int, seed: int, mean_scale: float = 0.0) -> np.ndarray:
    """Standard normal rows plus an optional random common mean."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, dim)) + mean_scale * rng.normal(size=(1, dim))

"""Input validation shared by the public math functions.

Every check raises ``ValueError`` (never ``assert``, which ``python -O`` removes) with the
argument's name, what was expected and what was given.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterable, Iterator

import torch

# True inside finite_values_checked(): the caller has checked every input for NaN/inf already
_FINITE_CHECKED = contextvars.ContextVar("covssl_finite_checked", default=False)


class NonFiniteError(ValueError):
    """NaN/inf entries: a ValueError the training loop can tell apart from a shape or dtype error."""


@contextlib.contextmanager
def finite_values_checked() -> Iterator[None]:
    """Within this block, :func:`check_embeddings` checks shapes and dtypes but not NaN/inf.

    Reading whether a tensor is finite waits for the device (a host-device sync on a GPU);
    a composite objective checks its inputs once (:func:`all_finite`) and evaluates its terms
    here, so that one training step syncs once instead of once per term and view.
    """
    token = _FINITE_CHECKED.set(True)
    try:
        yield
    finally:
        _FINITE_CHECKED.reset(token)


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every entry of every tensor is finite, read back from the device once."""
    flags = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(flags).all()) if flags else True


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise :class:`NonFiniteError` naming ``name`` if ``x`` has NaN/inf entries (skipped inside
    :func:`finite_values_checked`, whose caller has checked the values the tensor comes from)."""
    if not _FINITE_CHECKED.get() and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"{name}: expected finite values, got {int((~torch.isfinite(x)).sum())} NaN/inf entries")
    return x


def check_embeddings(z: object, name: str = "z", min_batch: int = 2) -> torch.Tensor:
    """Check that ``z`` is a finite floating tensor of shape (batch, dim) with batch >= 2."""
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (batch, dim), got {type(z).__name__}")
    if z.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D tensor of shape (batch, dim), got {z.ndim}-D with shape {tuple(z.shape)}"
        )
    if not z.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point dtype, got {z.dtype}")
    if z.shape[0] < min_batch:
        raise ValueError(f"{name}: expected a batch of at least {min_batch} rows, got {z.shape[0]}")
    if z.shape[1] < 1:
        raise ValueError(f"{name}: expected at least 1 dimension, got shape {tuple(z.shape)}")
    if not _FINITE_CHECKED.get() and not bool(torch.isfinite(z).all()):
        bad = int((~torch.isfinite(z)).sum())
        raise NonFiniteError(f"{name}: expected finite values, got {bad} NaN/inf entries")
    return z


def check_pair(z1: object, z2: object, names: tuple[str, str] = ("z1", "z2")) -> None:
    """Check two embedding batches and that their shapes match."""
    check_embeddings(z1, names[0])
    check_embeddings(z2, names[1])
    if z1.shape != z2.shape:  # type: ignore[union-attr]
        raise ValueError(
            f"{names[1]}: expected the same shape as {names[0]} {tuple(z1.shape)}, "  # type: ignore[union-attr]
            f"got {tuple(z2.shape)}"  # type: ignore[union-attr]
        )


def check_positive(value: object, name: str) -> float:
    """Check that a hyper-parameter is a finite number > 0 and return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def check_non_negative(value: object, name: str) -> float:
    """Check that a hyper-parameter is a finite number >= 0 and return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)

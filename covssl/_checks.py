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


def check_tensor(x: object, name: str, what: str = "(batch, dim)") -> torch.Tensor:
    """Check that ``x`` is a floating-point torch.Tensor that holds values (not a meta tensor).

    Reads attributes only, never values: free of device syncs, so cheap enough for inner loops.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape {what}, got {type(x).__name__}")
    if x.is_meta:
        raise ValueError(f"{name}: expected a tensor with values, got a meta tensor (shape {tuple(x.shape)} only)")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point dtype, got {x.dtype}")
    return x


def check_embeddings_layout(z: object, name: str = "z", min_batch: int = 2) -> torch.Tensor:
    """Check that ``z`` is a floating tensor of shape (batch, dim), batch >= ``min_batch``, dim >= 1.

    Like :func:`check_embeddings` without the NaN/inf check: it never reads values.
    """
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (batch, dim), got {type(z).__name__}")
    if z.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D tensor of shape (batch, dim), got {z.ndim}-D with shape {tuple(z.shape)}"
        )
    check_tensor(z, name)
    if z.shape[0] < min_batch:
        raise ValueError(f"{name}: expected a batch of at least {min_batch} rows, got {z.shape[0]}")
    if z.shape[1] < 1:
        raise ValueError(f"{name}: expected at least 1 dimension, got shape {tuple(z.shape)}")
    return z


def check_embeddings(z: object, name: str = "z", min_batch: int = 2) -> torch.Tensor:
    """Check that ``z`` is a finite floating tensor of shape (batch, dim) with batch >= 2."""
    z = check_embeddings_layout(z, name, min_batch)
    if not _FINITE_CHECKED.get() and not bool(torch.isfinite(z).all()):
        bad = int((~torch.isfinite(z)).sum())
        raise NonFiniteError(f"{name}: expected finite values, got {bad} NaN/inf entries")
    return z


def check_same_device(x: object, reference: torch.Tensor, name: str, reference_name: str) -> None:
    """Check that tensor ``x`` is on the device of ``reference`` (a non-tensor is left to the
    caller's own check). Two views on different devices would otherwise meet in a matmul and
    fail there with a message that names neither. Reads attributes only."""
    if isinstance(x, torch.Tensor) and x.device != reference.device:
        raise ValueError(f"{name}: expected the same device as {reference_name} ({reference.device}), got {x.device}")


def check_same_dtype(x: object, reference: torch.Tensor, name: str, reference_name: str) -> None:
    """Check that tensor ``x`` has the dtype of ``reference`` (a non-tensor is left to the caller)."""
    if isinstance(x, torch.Tensor) and x.dtype != reference.dtype:
        raise ValueError(f"{name}: expected the same dtype as {reference_name} ({reference.dtype}), got {x.dtype}")


def check_pair(z1: object, z2: object, names: tuple[str, str] = ("z1", "z2")) -> None:
    """Check two embedding batches: each as :func:`check_embeddings`, on one device, of one dtype
    and of one shape."""
    z1 = check_embeddings(z1, names[0])
    check_same_device(z2, z1, names[1], names[0])  # first: a meta z2 beside a cpu z1 is a device mismatch
    z2 = check_embeddings(z2, names[1])
    check_same_dtype(z2, z1, names[1], names[0])
    if z1.shape != z2.shape:
        raise ValueError(f"{names[1]}: expected the same shape as {names[0]} {tuple(z1.shape)}, got {tuple(z2.shape)}")


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


def check_int_at_least(value: object, name: str, low: int) -> int:
    """Check that a hyper-parameter is an int >= ``low`` (bool is refused) and return it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return value


def check_unit_interval(value: object, name: str) -> float:
    """Check that a hyper-parameter is a number in [0, 1] and return it as float."""
    value = check_non_negative(value, name)
    if value > 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return value

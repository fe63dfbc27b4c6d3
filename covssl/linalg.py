"""Numerically careful linear algebra shared by the objectives and diagnostics.

Two facts make covariance regularizers cheap when the batch is smaller than the embedding:

* Sylvester's determinant identity: logdet(I_d + a Z^T Z) = logdet(I_B + a Z Z^T);
* the Frobenius norm of a cross-Gram matrix: ||A^T B||_F^2 = <A A^T, B B^T>_F.

Both turn an O(B d^2 + d^3) computation on a d x d matrix into an O(B^2 d) one on a B x B
matrix. ``path="auto"`` picks the cheaper side; ``"feature"`` (d x d) and ``"sample"`` (B x B)
force one, for tests and benchmarks.

Log-determinants always run in float32 or higher with autocast disabled: in bf16/fp16 a
Cholesky factorization of a 512 x 512 matrix loses most of its digits.

Inputs are checked as the objectives check theirs (:mod:`covssl._checks`): a floating-point
tensor with values (not a meta tensor) of the documented shape, and for two inputs the same
device, dtype and shape. ``covariance`` also refuses NaN/inf, and the log-determinants refuse
a matrix whose Cholesky factorization fails (which NaN entries make it do). ``center``,
``cross_gram_frobenius_sq`` and ``offdiagonal_sq_sum`` do not read values: they are the inner
loop of losses that have checked their embeddings already, and a NaN check is a device sync.
"""

from __future__ import annotations

from typing import Literal

import torch

from covssl._checks import (
    check_embeddings,
    check_embeddings_layout,
    check_int_at_least,
    check_non_negative,
    check_same_device,
    check_same_dtype,
    check_tensor,
)

Path = Literal["auto", "feature", "sample"]
_PATHS = ("auto", "feature", "sample")


def _check_path(path: str) -> None:
    if path not in _PATHS:
        raise ValueError(f"path: expected one of {_PATHS}, got {path!r}")


def _check_operands(a: object, b: object) -> None:
    """a and b: (batch, dim) floating tensors of the same shape, device and dtype (values not read)."""
    a = check_embeddings_layout(a, "a", min_batch=1)
    check_same_device(b, a, "b", "a")
    b = check_embeddings_layout(b, "b", min_batch=1)
    check_same_dtype(b, a, "b", "a")
    if a.shape != b.shape:
        raise ValueError(f"b: expected the same shape as a {tuple(a.shape)}, got {tuple(b.shape)}")


def use_sample_side(batch: int, dim: int, path: Path = "auto") -> bool:
    """True when the B x B ("sample") computation should be used instead of the d x d one."""
    check_int_at_least(batch, "batch", 1)
    check_int_at_least(dim, "dim", 1)
    _check_path(path)
    if path == "auto":
        return batch < dim
    return path == "sample"


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Upcast half-precision tensors (fp16, bf16) to float32; leave float32/float64 alone.

    Integer tensors are refused rather than returned as they are (they are not "at least float32").
    """
    check_tensor(x, "x", "(any shape)")
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def center(z: torch.Tensor) -> torch.Tensor:
    """Subtract the batch mean from each column of z (batch, dim); NaN/inf entries are not checked."""
    check_embeddings_layout(z, "z", min_batch=1)
    return z - z.mean(dim=0, keepdim=True)


def covariance(z: torch.Tensor) -> torch.Tensor:
    """Unbiased batch covariance C = (Z - mean)^T (Z - mean) / (B - 1), shape (dim, dim).

    z must be a finite floating tensor of shape (batch >= 2, dim), as every objective's input.
    """
    check_embeddings(z, "z")
    zc = center(z)
    return zc.T @ zc / (z.shape[0] - 1)  # (d, B) @ (B, d) -> (d, d)


def logdet_spd(matrix: torch.Tensor, name: str = "matrix") -> torch.Tensor:
    """log det of a symmetric positive-definite matrix via Cholesky, in float32 or higher.

    Args:
        matrix: shape (..., n, n), floating point; only its lower triangle is read.
        name: what to call it in error messages.

    Raises ValueError (never returns NaN) when the matrix is not numerically positive definite.
    """
    check_tensor(matrix, name, "(..., n, n)")
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2] or matrix.shape[-1] < 1:
        raise ValueError(f"{name}: expected a square matrix of shape (..., n, n), got {tuple(matrix.shape)}")
    device_type = matrix.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        m = at_least_float32(matrix)
        factor, info = torch.linalg.cholesky_ex(m)
        if bool((info != 0).any()):
            raise ValueError(
                f"{name}: expected a symmetric positive-definite matrix, but the Cholesky "
                f"factorization failed at leading minor {int(info.max())} (dtype {m.dtype}, "
                f"shape {tuple(m.shape)}); the embeddings are probably too large or not finite"
            )
        return 2.0 * torch.log(torch.diagonal(factor, dim1=-2, dim2=-1)).sum(-1)


def logdet_identity_plus_gram(z: torch.Tensor, alpha: float, path: Path = "auto") -> torch.Tensor:
    """logdet(I + alpha * Z^T Z) for z (batch, dim), on the cheaper side by Sylvester's identity.

    feature side: logdet(I_d + alpha Z^T Z)   -- O(B d^2 + d^3)
    sample side:  logdet(I_B + alpha Z Z^T)   -- O(B^2 d + B^3)

    z: (batch >= 1, dim), floating point; alpha: a finite number >= 0. Non-finite z makes the
    Cholesky factorization fail, which raises ValueError.
    """
    check_embeddings_layout(z, "z", min_batch=1)
    check_non_negative(alpha, "alpha")
    batch, dim = z.shape
    with torch.autocast(device_type=z.device.type, enabled=False):
        z = at_least_float32(z)
        if use_sample_side(batch, dim, path):
            gram = z @ z.T  # (B, d) @ (d, B) -> (B, B)
        else:
            gram = z.T @ z  # (d, B) @ (B, d) -> (d, d)
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        return logdet_spd(eye + alpha * gram, name="I + alpha * Gram")


def cross_gram_frobenius_sq(a: torch.Tensor, b: torch.Tensor, path: Path = "auto") -> torch.Tensor:
    """||A^T B||_F^2 for a, b (batch, dim), on the cheaper side.

    feature side: sum((A^T B)^2)                 -- a d x d matrix
    sample side:  <A A^T, B B^T>_F               -- two B x B matrices

    a, b: the same shape, device and dtype; NaN/inf entries are not checked.
    """
    _check_operands(a, b)
    batch, dim = a.shape
    if use_sample_side(batch, dim, path):
        gram_a = a @ a.T  # (B, d) @ (d, B) -> (B, B)
        gram_b = gram_a if b is a else b @ b.T  # (B, B)
        return (gram_a * gram_b).sum()
    return (a.T @ b).pow(2).sum()  # (d, B) @ (B, d) -> (d, d)


def offdiagonal_sq_sum(a: torch.Tensor, b: torch.Tensor, scale: float, path: Path = "auto") -> torch.Tensor:
    """sum_{i != j} C_ij^2 for C = scale * A^T B, without forming C when B < d.

    Uses sum_{i != j} C_ij^2 = ||C||_F^2 - sum_i C_ii^2 with C_ii = scale * sum_b a_bi b_bi.
    a, b: the same shape, device and dtype; NaN/inf entries are not checked.
    """
    _check_operands(a, b)
    batch, dim = a.shape
    if not use_sample_side(batch, dim, path):
        c = scale * (a.T @ b)  # (d, B) @ (B, d) -> (d, d)
        # exact and never negative: no cancellation between ||C||_F^2 and its diagonal
        return (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    diagonal = scale * (a * b).sum(dim=0)  # (d,)
    # when B < d, C has rank < d and its off-diagonal mass is large, so the cancellation is mild
    return scale**2 * cross_gram_frobenius_sq(a, b, path) - diagonal.pow(2).sum()

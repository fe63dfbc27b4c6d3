"""Tests of covssl/objectives/vne.py against a float64 numpy eigen reference and the official formula."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.objectives.matrix_information import matrix_entropy
from covssl.objectives.vne import i_vne_loss, von_neumann_entropy

vne_module = importlib.import_module("covssl.objectives.vne")


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _anisotropic(seed: int, batch: int, dim: int) -> torch.Tensor:
    """Random embeddings with a non-flat spectrum and a mean offset (entropy well below the max)."""
    return _randn(seed, batch, dim) * torch.logspace(0, -1, dim, dtype=torch.float64) + 0.3


def _orthogonal(seed: int, dim: int) -> torch.Tensor:
    q, r = torch.linalg.qr(_randn(seed, dim, dim))
    return q * torch.sign(torch.diagonal(r))


def reference_vne(z: np.ndarray) -> float:
    """-sum lambda log lambda over the eigenvalues of Zn^T Zn / B, built with loops on the d x d side."""
    batch, dim = z.shape
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    rho = np.zeros((dim, dim))
    for b in range(batch):
        rho += np.outer(zn[b], zn[b]) / batch
    return float(-sum(lam * math.log(lam) for lam in np.linalg.eigvalsh(rho) if lam > 1e-12))


def official_vne(h: torch.Tensor) -> torch.Tensor:
    """The official get_vne (vne/__init__.py): squared singular values of Zn / sqrt(B), nansum."""
    z = F.normalize(h, dim=1)
    eig_val = torch.linalg.svdvals(z / math.sqrt(z.shape[0])) ** 2
    return -(eig_val * torch.log(eig_val)).nansum()


# ---------------------------------------------------------------- reference values


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(2, 9),
    dim=st.integers(1, 9),
    path=st.sampled_from(["auto", "feature", "sample"]),
)
def test_matches_the_numpy_reference(seed: int, batch: int, dim: int, path: str) -> None:
    z = _anisotropic(seed, batch, dim)
    got = von_neumann_entropy(z, path=path).item()  # type: ignore[arg-type]
    assert got == pytest.approx(reference_vne(z.numpy()), abs=1e-9)


@pytest.mark.parametrize(("batch", "dim"), [(6, 3), (3, 6), (16, 64), (64, 16)])
def test_matches_the_official_svd_formula_in_value_and_gradient(batch: int, dim: int) -> None:
    z = _anisotropic(batch + dim, batch, dim).requires_grad_(True)
    ref = official_vne(z)
    (ref_grad,) = torch.autograd.grad(ref, z)
    got = von_neumann_entropy(z)
    (grad,) = torch.autograd.grad(got, z)
    assert got.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(("batch", "dim"), [(5, 12), (12, 5)])
def test_is_matrix_entropy_of_the_uncentred_normalized_second_moment(batch: int, dim: int) -> None:
    z = _anisotropic(3, batch, dim)
    assert von_neumann_entropy(z).item() == matrix_entropy(z, center=False, normalize=True).item()
    # the centred covariance (matrix_entropy's default) is a different matrix with another entropy
    assert abs(matrix_entropy(z).item() - von_neumann_entropy(z).item()) > 1e-3


@pytest.mark.parametrize(("batch", "dim"), [(5, 12), (12, 5)])
def test_both_sides_give_the_same_value_and_gradient(batch: int, dim: int) -> None:
    z = _anisotropic(0, batch, dim).requires_grad_(True)
    values, grads = [], []
    for path in ("feature", "sample"):
        value = von_neumann_entropy(z, path=path)  # type: ignore[arg-type]
        values.append(value)
        grads.append(torch.autograd.grad(value, z)[0])
    torch.testing.assert_close(values[0], values[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("batch", "dim", "path"), [(6, 3, "feature"), (4, 6, "sample"), (4, 6, "feature")])
def test_gradcheck_full_rank(batch: int, dim: int, path: str) -> None:
    z = _anisotropic(1, batch, dim).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: von_neumann_entropy(x, path=path), (z,))  # type: ignore[arg-type]
    z2 = _anisotropic(2, batch, dim).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: i_vne_loss(x, y, alpha_1=2.0, path=path)["loss"], (z, z2))


# ---------------------------------------------------------------- extremes and invariances


@pytest.mark.parametrize("dim", [2, 5, 16])
def test_isotropic_rows_reach_the_maximum_log_d(dim: int) -> None:
    q = _orthogonal(dim, dim)
    gen = torch.Generator().manual_seed(dim)
    scaled = q * (torch.rand(dim, 1, generator=gen, dtype=torch.float64) + 0.5)  # row norms do not matter
    assert von_neumann_entropy(scaled).item() == pytest.approx(math.log(dim), abs=1e-12)
    repeated = torch.cat([q, -2 * q, 3 * q])  # 3d rows, C_auto still I/d
    assert von_neumann_entropy(repeated).item() == pytest.approx(math.log(dim), abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(2, 10), dim=st.integers(1, 10))
def test_never_exceeds_log_min_batch_dim_and_orthonormal_rows_reach_it(seed: int, batch: int, dim: int) -> None:
    bound = math.log(min(batch, dim))
    assert von_neumann_entropy(_randn(seed, batch, dim)).item() <= bound + 1e-12
    if batch <= dim:  # B orthonormal rows: B eigenvalues 1/B
        rows = _orthogonal(seed, dim)[:batch]
        assert von_neumann_entropy(rows).item() == pytest.approx(bound, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("batch", "dim"), [(8, 4), (4, 8)])
def test_collapsed_rows_give_zero(dtype: torch.dtype, batch: int, dim: int) -> None:
    direction = _randn(5, 1, dim)
    scales = torch.linspace(0.5, 3.0, batch, dtype=torch.float64).unsqueeze(1)
    scales[-1] = -scales[-1]
    z = (scales * direction).to(dtype)  # parallel rows, one flipped: C_auto = v v^T
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert von_neumann_entropy(z).item() == pytest.approx(0.0, abs=tol)
    assert von_neumann_entropy(torch.ones(batch, dim, dtype=dtype)).item() == pytest.approx(0.0, abs=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.ones(6, 8),  # collapsed
        lambda: torch.eye(8)[[0, 0, 1, 1, 2, 2]],  # duplicated one-hot rows: exact zero eigenvalues
        lambda: torch.cat([torch.randn(6, 3), torch.zeros(6, 5)], dim=1),  # rank 3 < B = 6
        lambda: torch.randn(20, 1) * torch.randn(1, 4),  # rank 1, B > d
        lambda: torch.cat([torch.randn(3, 5), torch.zeros(1, 5)]),  # a zero row
    ],
)
def test_gradient_is_finite_on_rank_deficient_input(dtype: torch.dtype, make) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    z = make().to(dtype).requires_grad_(True)
    value = von_neumann_entropy(z)
    (grad,) = torch.autograd.grad(value, z)
    assert math.isfinite(value.item()) and bool(torch.isfinite(grad).all())
    loss = i_vne_loss(z, z.detach() + 0.1)["loss"]
    (grad,) = torch.autograd.grad(loss, z)
    assert math.isfinite(loss.item()) and bool(torch.isfinite(grad).all())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(2, 8), dim=st.integers(1, 8))
def test_invariant_to_row_scaling_rotations_and_row_order(seed: int, batch: int, dim: int) -> None:
    z = _anisotropic(seed, batch, dim)
    base = von_neumann_entropy(z).item()
    scales = torch.rand(batch, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 5 + 0.1
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    for moved in (z * scales, z @ _orthogonal(seed + 1, dim), z[perm]):
        assert von_neumann_entropy(moved).item() == pytest.approx(base, abs=1e-9)


# ---------------------------------------------------------------- I-VNE+


@pytest.mark.parametrize(("batch", "dim"), [(8, 4), (4, 8), (16, 16)])
def test_i_vne_loss_matches_the_official_objective(batch: int, dim: int) -> None:
    z1, z2 = _anisotropic(1, batch, dim), _anisotropic(2, batch, dim)
    cos = F.cosine_similarity(z1, z2).mean()
    entropy = (official_vne(z1) + official_vne(z2)) / 2
    out = i_vne_loss(z1, z2)  # defaults: alpha_1 = 4.16, alpha_2 = 1
    assert out["alignment"].item() == pytest.approx(cos.item(), rel=1e-12)
    assert out["entropy"].item() == pytest.approx(entropy.item(), rel=1e-10)
    assert out["loss"].item() == pytest.approx(-(4.16 * cos + entropy).item(), rel=1e-10)
    weighted = i_vne_loss(z1, z2, alpha_1=0.5, alpha_2=3.0)["loss"].item()
    assert weighted == pytest.approx(-(0.5 * cos + 3.0 * entropy).item(), rel=1e-10)
    swapped = i_vne_loss(z2, z1)
    for key in out:
        assert swapped[key].item() == pytest.approx(out[key].item(), rel=1e-12)


def test_i_vne_extremes() -> None:
    q = _orthogonal(0, 6)
    best = i_vne_loss(q, 2 * q)  # aligned and isotropic: the minimum -(alpha_1 + log d)
    assert best["loss"].item() == pytest.approx(-(4.16 + math.log(6)), abs=1e-12)
    ones = torch.ones(6, 6, dtype=torch.float64)
    collapsed = i_vne_loss(ones, ones)  # aligned but collapsed: no entropy
    assert collapsed["entropy"].item() == pytest.approx(0.0, abs=1e-12)
    assert i_vne_loss(q, -q)["alignment"].item() == pytest.approx(-1.0, abs=1e-12)


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    z1, z2 = _anisotropic(4, 8, 32).float(), _anisotropic(5, 8, 32).float()
    reference = i_vne_loss(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = i_vne_loss(z1, z2)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in i_vne_loss(z1.half(), z2.half()).values())
    assert i_vne_loss(z1.double(), z2.double())["loss"].dtype == torch.float64
    assert von_neumann_entropy(z1.bfloat16()).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"z1": torch.ones(4)}, "z1"),
        ({"z2": torch.ones(2, 3, 4)}, "z2"),
        ({"z2": torch.ones(4, 7)}, "z2"),
        ({"z1": torch.ones(1, 6), "z2": torch.ones(1, 6)}, "z1"),
        ({"z1": torch.full((4, 6), float("nan"))}, "z1"),
        ({"z2": torch.full((4, 6), float("-inf"))}, "z2"),
        ({"z2": torch.ones(4, 6, dtype=torch.int32)}, "z2"),
        ({"alpha_1": -1.0}, "alpha_1"),
        ({"alpha_2": "1"}, "alpha_2"),
        ({"alpha_2": float("nan")}, "alpha_2"),
        ({"path": "gram"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"z1": torch.randn(4, 6), "z2": torch.randn(4, 6)} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        i_vne_loss(**args)


def test_von_neumann_entropy_checks_its_input() -> None:
    with pytest.raises(ValueError, match=r"^z:"):
        von_neumann_entropy(torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"^z:"):
        von_neumann_entropy(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"^path:"):
        von_neumann_entropy(torch.ones(4, 4), path="both")  # type: ignore[arg-type]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(vne_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

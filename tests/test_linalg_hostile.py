"""Hostile inputs to every public function of covssl/linalg.py: the objectives' checks, same messages.

Meta tensors, integer tensors, non-tensors and wrong shapes are refused naming the argument;
two operands must share device, dtype and shape. NaN/inf: ``covariance`` refuses them like every
objective; the log-determinants refuse them through the failed Cholesky factorization; the
inner-loop helpers do not read values (a read is a device sync) and pass NaN through.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

import pytest
import torch

import covssl.linalg as linalg
from covssl._checks import NonFiniteError, check_embeddings, finite_values_checked

OneTensor = Callable[[object], object]


def _z(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(8, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)


def _spd() -> torch.Tensor:
    z = _z()
    return z.T @ z / 8 + torch.eye(5, dtype=torch.float64)


# name -> (the call, with the tensor under test as its first tensor; that argument's name in
# messages; a valid value for it)
FIRST_ARGUMENT: dict[str, tuple[OneTensor, str, Callable[[], torch.Tensor]]] = {
    "at_least_float32": (lambda x: linalg.at_least_float32(x), "x", _z),  # type: ignore[arg-type]
    "center": (lambda x: linalg.center(x), "z", _z),  # type: ignore[arg-type]
    "covariance": (lambda x: linalg.covariance(x), "z", _z),  # type: ignore[arg-type]
    "logdet_spd": (lambda x: linalg.logdet_spd(x, name="sigma"), "sigma", _spd),  # type: ignore[arg-type]
    "logdet_identity_plus_gram": (lambda x: linalg.logdet_identity_plus_gram(x, 0.5), "z", _z),  # type: ignore
    "cross_gram_frobenius_sq": (lambda x: linalg.cross_gram_frobenius_sq(x, _z()), "a", _z),  # type: ignore[arg-type]
    "offdiagonal_sq_sum": (lambda x: linalg.offdiagonal_sq_sum(x, _z(), 0.5), "a", _z),  # type: ignore[arg-type]
}
TWO_OPERANDS: dict[str, Callable[[torch.Tensor, object], object]] = {
    "cross_gram_frobenius_sq": lambda a, b: linalg.cross_gram_frobenius_sq(a, b),  # type: ignore[arg-type]
    "offdiagonal_sq_sum": lambda a, b: linalg.offdiagonal_sq_sum(a, b, 0.5),  # type: ignore[arg-type]
}
NO_TENSOR = {"use_sample_side"}
REFUSES_NAN = {"covariance", "logdet_spd", "logdet_identity_plus_gram"}  # the rest pass NaN through


def test_every_public_function_is_listed() -> None:
    public = {
        name
        for name, value in vars(linalg).items()
        if inspect.isfunction(value) and value.__module__ == linalg.__name__ and not name.startswith("_")
    }
    assert public == set(FIRST_ARGUMENT) | NO_TENSOR


def _match(text: str) -> str:
    return "^" + re.escape(text)


@pytest.mark.parametrize("name", sorted(FIRST_ARGUMENT))
def test_a_meta_tensor_is_refused(name: str) -> None:
    call, argument, valid = FIRST_ARGUMENT[name]
    shape = tuple(valid().shape)
    message = f"{argument}: expected a tensor with values, got a meta tensor (shape {shape} only)"
    with pytest.raises(ValueError, match=_match(message)):
        call(valid().to("meta"))


@pytest.mark.parametrize("name", sorted(FIRST_ARGUMENT))
def test_an_integer_tensor_is_refused(name: str) -> None:
    call, argument, valid = FIRST_ARGUMENT[name]
    with pytest.raises(ValueError, match=_match(f"{argument}: expected a floating-point dtype, got torch.int64")):
        call(valid().round().long())


@pytest.mark.parametrize("name", sorted(FIRST_ARGUMENT))
def test_a_non_tensor_is_refused(name: str) -> None:
    call, argument, valid = FIRST_ARGUMENT[name]
    with pytest.raises(ValueError, match=_match(f"{argument}: expected a torch.Tensor of shape")):
        call(valid().tolist())


@pytest.mark.parametrize("name", sorted(set(FIRST_ARGUMENT) - {"at_least_float32"}))
def test_a_one_dimensional_tensor_is_refused(name: str) -> None:
    call, argument, _ = FIRST_ARGUMENT[name]
    with pytest.raises(ValueError, match=_match(f"{argument}: expected a ")):
        call(torch.ones(5, dtype=torch.float64))


def test_the_messages_are_the_objectives_messages() -> None:
    for bad in (_z().to("meta"), _z().long(), torch.ones(5), [1.0]):
        with pytest.raises(ValueError) as objective_error:
            check_embeddings(bad, "z")
        with pytest.raises(ValueError) as linalg_error:
            linalg.covariance(bad)  # type: ignore[arg-type]
        assert str(linalg_error.value) == str(objective_error.value)


def test_logdet_spd_refuses_a_matrix_that_is_not_square() -> None:
    with pytest.raises(ValueError, match=r"^sigma: expected a square matrix of shape \(\.\.\., n, n\), got \(3, 4\)"):
        linalg.logdet_spd(torch.ones(3, 4), name="sigma")
    assert linalg.logdet_spd(torch.eye(3).expand(2, 3, 3)).shape == (2,)  # a batch of matrices is fine


@pytest.mark.parametrize("name", sorted(FIRST_ARGUMENT))
def test_nan_is_refused_or_passed_through_as_documented(name: str) -> None:
    call, argument, valid = FIRST_ARGUMENT[name]
    x = valid().clone()
    x[1, 2] = x[2, 1] = float("nan")  # both sides: logdet_spd reads the lower triangle only
    if name in REFUSES_NAN:
        with pytest.raises(ValueError, match="finite"):
            call(x)
    elif name != "at_least_float32":
        assert torch.isnan(call(x)).any()  # type: ignore[arg-type]


def test_covariance_refuses_nan_as_the_objectives_do() -> None:
    z = _z()
    z[3, 1] = float("inf")
    with pytest.raises(NonFiniteError, match=r"^z: expected finite values, got 1 NaN/inf entries$"):
        linalg.covariance(z)
    with finite_values_checked():  # a caller that checked its inputs: no second device sync
        assert not torch.isfinite(linalg.covariance(z)).all()


@pytest.mark.parametrize("name", sorted(set(FIRST_ARGUMENT) - {"covariance"}))
def test_the_checks_never_read_values(name: str, monkeypatch) -> None:
    # reading a NaN check on the host is a device sync: only covariance, a public entry point
    # used by no loss, pays one; the others are the inner loop of losses that checked already
    reads: list[object] = []
    real = torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: reads.append(t) or real(t))
    call, _, valid = FIRST_ARGUMENT[name]
    call(valid())
    assert reads == []


@pytest.mark.parametrize("name", sorted(TWO_OPERANDS))
def test_operands_of_different_dtypes_devices_or_shapes_are_refused(name: str) -> None:
    call = TWO_OPERANDS[name]
    with pytest.raises(ValueError, match=_match("b: expected the same dtype as a (torch.float64), got torch.float32")):
        call(_z(), _z(torch.float32))
    with pytest.raises(ValueError, match=_match("b: expected the same device as a (cpu), got meta")):
        call(_z(), _z().to("meta"))
    with pytest.raises(ValueError, match=_match("b: expected the same shape as a (8, 5), got (8, 4)")):
        call(_z(), _z()[:, :4])
    with pytest.raises(ValueError, match=_match("b: expected a floating-point dtype, got torch.int64")):
        call(_z(), _z().long())


@pytest.mark.parametrize("bad", [0, -1, True, 4.0, None])
def test_use_sample_side_refuses_a_size_that_is_not_a_positive_int(bad: object) -> None:
    with pytest.raises(ValueError, match=_match(f"batch: expected an int >= 1, got {bad!r}")):
        linalg.use_sample_side(bad, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=_match(f"dim: expected an int >= 1, got {bad!r}")):
        linalg.use_sample_side(4, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("alpha", [-1.0, float("nan"), float("inf"), "0.5"])
def test_logdet_identity_plus_gram_refuses_a_bad_alpha(alpha: object) -> None:
    with pytest.raises(ValueError, match="^alpha: expected a"):
        linalg.logdet_identity_plus_gram(_z(), alpha)  # type: ignore[arg-type]


def test_valid_input_gives_the_same_values_as_the_formulas() -> None:
    z = _z()
    zc = z - z.mean(0)
    assert torch.equal(linalg.center(z), zc)
    assert torch.allclose(linalg.covariance(z), zc.T @ zc / 7, rtol=1e-12, atol=1e-12)
    assert linalg.at_least_float32(z) is z
    assert linalg.logdet_spd(_spd()).item() == pytest.approx(torch.logdet(_spd()).item(), rel=1e-12)

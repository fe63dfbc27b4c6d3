"""Views of different dtypes or devices: refused with a message that names the argument.

Every public function of :mod:`covssl.objectives` that takes several views is listed below (a
test checks the lists cover ``covssl.objectives.__all__``). Devices are tested with the "meta"
device beside cpu, the one second device every machine has.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch

import covssl.objectives as objectives
from covssl.objectives import Objective

Call = Callable[[torch.Tensor, torch.Tensor], object]

# (first view, second view) -> the call; the second view is the one made to differ, and the
# names are how the message calls the two
STRICT: dict[str, tuple[Call, str, str]] = {
    "barlow_twins_loss": (lambda a, b: objectives.barlow_twins_loss(a, b), "z1", "z2"),
    "cosine_alignment": (lambda a, b: objectives.cosine_alignment(a, b), "z1", "z2"),
    "negative_cosine": (lambda a, b: objectives.negative_cosine(a, b), "p", "z"),
    "simsiam_loss": (lambda a, b: objectives.simsiam_loss(a, a, a, b), "p1", "z2"),
    "vicreg_loss": (lambda a, b: objectives.vicreg_loss(a, b), "z1", "z2"),
    "info_nce_loss": (lambda a, b: objectives.info_nce_loss(a, b), "z1", "z2"),
    "matrix_ssl_loss": (lambda a, b: objectives.matrix_ssl_loss(a, b), "z1", "z2"),
    "mec_loss": (lambda a, b: objectives.mec_loss(a, b), "z1", "z2"),
    "spectral_contrastive_loss": (lambda a, b: objectives.spectral_contrastive_loss(a, b), "z1", "z2"),
    "vibcreg_loss": (lambda a, b: objectives.vibcreg_loss(a, b), "z1", "z2"),
    "i_vne_loss": (lambda a, b: objectives.i_vne_loss(a, b), "z1", "z2"),
    "wmse_loss": (lambda a, b: objectives.wmse_loss(a, b), "z1", "z2"),
    "tico_loss": (lambda a, b: objectives.tico_loss(a, b, torch.zeros(4, 4)), "z1", "z2"),
    "TiCoRegularizer": (lambda a, b: objectives.TiCoRegularizer(4)(a, b), "z1", "z2"),
    "Objective": (lambda a, b: Objective.from_spec("mse:1 + coding_rate:1")(a, b), "z1", "z2"),
    "Objective.over_views": (
        lambda a, b: Objective.from_spec("mse:1 + coding_rate:1").over_views([a, a, b], num_global=2),
        "z1",
        "z3",
    ),
}

# These take a list of views and promote their dtypes on purpose (each upcast to float32 at least,
# then the widest: see ``_common_dtype`` in covssl/objectives/emp_ssl.py); a meta view is refused
# by the per-view check, naming it. A second real device is not compared with the first's here.
PROMOTING: dict[str, tuple[Call, str]] = {
    "frossl_loss": (lambda a, b: objectives.frossl_loss([a, b]), "views[1]"),
    "lejepa_loss": (lambda a, b: objectives.lejepa_loss([a, b], num_slices=8), "views[1]"),
    "mmcr_loss": (lambda a, b: objectives.mmcr_loss([a, b]), "views[1]"),
    "emp_ssl_loss": (lambda a, b: objectives.emp_ssl_loss([a, b]), "views[1]"),
    "bag_of_features": (lambda a, b: objectives.bag_of_features([a, b]), "views[1]"),
    "simdino_loss": (lambda a, b: objectives.simdino_loss([a, a], [a, b]), "teacher_views[1]"),
    "SIGRegRegularizer": (lambda a, b: objectives.SIGRegRegularizer(4, num_slices=8)(a, b), "z2"),
    "VISRegRegularizer": (lambda a, b: objectives.VISRegRegularizer(4, num_slices=8)(a, b), "z2"),
}

ONE_VIEW = {
    "coding_rate", "correlation_penalty", "covariance", "covariance_penalty", "frossl_regularizer",
    "matrix_entropy", "sigreg", "taylor_coding_rate", "uniformity", "variance_hinge", "visreg",
    "von_neumann_entropy", "w2_uniformity", "cholesky_whiten",
}  # fmt: skip
NOT_A_LOSS = {"ObjectiveOutput", "TERMS", "TermDef", "get_term"}


def _view(seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(16, 4, generator=gen).to(dtype=dtype, device=device)


def test_every_export_is_listed() -> None:
    listed = {name.split(".")[0] for name in STRICT} | set(PROMOTING) | ONE_VIEW | NOT_A_LOSS
    assert listed == set(objectives.__all__)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (torch.bfloat16, torch.float64),
        (torch.float32, torch.float64),
        (torch.float64, torch.float32),
        (torch.float32, torch.float16),
    ],
)
@pytest.mark.parametrize("name", sorted(STRICT))
def test_views_of_different_dtypes_are_refused_naming_the_argument(
    name: str, first: torch.dtype, second: torch.dtype
) -> None:
    call, a, b = STRICT[name]
    message = f"{b}: expected the same dtype as {a} ({first}), got {second}"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        call(_view(0, first), _view(1, second))


@pytest.mark.parametrize("name", sorted(STRICT))
def test_a_view_on_another_device_is_refused_naming_the_argument(name: str) -> None:
    call, a, b = STRICT[name]
    with pytest.raises(ValueError, match=rf"^{b}: expected the same device as {a} \(cpu\), got meta$"):
        call(_view(0), _view(1, device="meta"))


@pytest.mark.parametrize("name", sorted(STRICT))
def test_a_meta_first_view_is_refused_naming_it(name: str) -> None:
    call, a, _ = STRICT[name]
    with pytest.raises(ValueError, match=rf"^{a}: expected a tensor with values, got a meta tensor"):
        call(_view(0, device="meta"), _view(1))


@pytest.mark.parametrize("name", sorted(STRICT))
def test_an_integer_view_is_refused_naming_it(name: str) -> None:
    call, _, b = STRICT[name]
    with pytest.raises(ValueError, match=rf"^{b}: expected a floating-point dtype, got torch.int64$"):
        call(_view(0), _view(1).long())


@pytest.mark.parametrize("name", sorted(PROMOTING))
def test_a_meta_view_in_a_list_of_views_is_refused_naming_it(name: str) -> None:
    call, b = PROMOTING[name]
    with pytest.raises(ValueError, match="^" + re.escape(f"{b}: expected a tensor with values, got a meta tensor")):
        call(_view(0), _view(1, device="meta"))


@pytest.mark.parametrize("name", sorted(PROMOTING))
def test_a_list_of_views_of_different_dtypes_is_promoted(name: str) -> None:
    out = PROMOTING[name][0](_view(0, torch.bfloat16), _view(1, torch.float64))
    value = out["loss"] if isinstance(out, dict) else out
    assert value.dtype == torch.float64  # type: ignore[union-attr]


def test_a_prediction_on_another_device_is_refused_naming_it() -> None:
    objective = Objective.from_spec("negative_cosine")
    z1, z2 = _view(0), _view(1)
    with pytest.raises(ValueError, match=r"^p2: expected the same device as z1 \(cpu\), got meta$"):
        objective(z1, z2, _view(2), _view(3, device="meta"))


def test_a_prediction_may_come_in_half_precision_beside_float32_views() -> None:
    # a predictor can end in another dtype than the projector under autocast: both are upcast
    objective = Objective.from_spec("negative_cosine")
    z1, z2, p1, p2 = (_view(i) for i in range(4))
    half = objective(z1, z2, p1.bfloat16(), p2.bfloat16()).loss
    assert half.dtype == torch.float32
    assert torch.equal(half, objective(z1, z2, p1.bfloat16().float(), p2.bfloat16().float()).loss)

"""Every public diagnostic rejects bad embeddings with a ValueError naming the argument."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from covssl import diagnostics as d

SINGLE: dict[str, Callable[[torch.Tensor], object]] = {
    "spectrum": d.spectrum,
    "effective_rank": d.effective_rank,
    "isotropy": d.isotropy,
    "std_of_normalized": d.std_of_normalized,
    "center_residual": d.center_residual,
    "uniformity": d.uniformity,
    "taylor_gap": d.taylor_gap,
    "coding_rate_terms": d.coding_rate_terms,
    "gradient_split": lambda z: d.gradient_split(lambda zn: zn.sum(), z),
    "logdet_slq_gram": lambda z: d.logdet_slq_gram(z, 1.0),
    "collapse_report": d.collapse_report,
    "rankme": d.rankme,
    "alpha_req": d.alpha_req,
    "nesum": d.nesum,
    "stable_rank": d.stable_rank,
    "w2_uniformity": d.w2_uniformity,
    "label_free_metrics": d.label_free_metrics,
}

BAD = {
    "not a tensor": [[1.0, 2.0], [3.0, 4.0]],
    "1-D": torch.ones(4),
    "3-D": torch.ones(2, 3, 4),
    "integer": torch.ones(4, 3, dtype=torch.long),
    "batch of one": torch.ones(1, 3),
    "no dimensions": torch.ones(4, 0),
    "NaN": torch.tensor([[1.0, float("nan")], [0.0, 1.0]]),
    "inf": torch.tensor([[1.0, float("inf")], [0.0, 1.0]]),
}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("fn", SINGLE.values(), ids=SINGLE.keys())
def test_bad_embeddings_raise_value_error_naming_z(fn: Callable[[torch.Tensor], object], bad: object) -> None:
    with pytest.raises(ValueError, match=r"^z1?: expected"):
        fn(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_alignment_names_the_bad_view(bad: object) -> None:
    good = torch.randn(2, 2)
    with pytest.raises(ValueError, match="^z1: expected"):
        d.alignment(bad, good)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^z2: expected"):
        d.alignment(good, bad)  # type: ignore[arg-type]


def test_spectrum_rejects_an_unknown_path() -> None:
    with pytest.raises(ValueError, match="path"):
        d.spectrum(torch.randn(4, 3), path="diagonal")  # type: ignore[arg-type]


def test_half_precision_inputs_are_accepted() -> None:
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.float16, torch.bfloat16):
        low = z.to(dtype)
        assert d.effective_rank(low) == pytest.approx(d.effective_rank(low.float()), rel=1e-12)
        assert d.collapse_report(low, low)["alignment"] == 0.0

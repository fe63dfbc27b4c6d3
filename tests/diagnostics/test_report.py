"""collapse_report: JSON round trip, reference values, consistency with the single metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from covssl.diagnostics import (
    alignment,
    center_residual,
    coding_rate_terms,
    alpha_req,
    collapse_report,
    lidar,
    nesum,
    rankme,
    stable_rank,
    w2_uniformity,
    effective_rank,
    isotropy,
    json_safe,
    spectrum,
    std_of_normalized,
    uniformity,
)

from ._data import gaussian, whitened

SINGLE_METRICS = [
    "effective_rank",
    "condition_number",
    "eigenvalue_entropy",
    "std_of_normalized",
    "center_residual_ratio",
    "uniformity",
]


def roundtrip(report: dict) -> dict:
    return json.loads(json.dumps(json_safe(report), allow_nan=False))  # strict JSON: no Infinity/NaN


@pytest.mark.parametrize(
    "z",
    [
        torch.tensor(gaussian(32, 8, seed=0)),
        torch.tensor([[1.0, 2.0, 3.0]]).repeat(6, 1),  # collapsed: infinities
        torch.zeros(4, 5),  # all-zero rows
        torch.tensor(gaussian(5, 16, seed=1), dtype=torch.float32),  # B < d
    ],
)
def test_report_roundtrips_through_strict_json(z: torch.Tensor) -> None:
    report = collapse_report(z, z + 0.1)
    saved = roundtrip(report)
    assert saved == json_safe(report)
    for key, value in report.items():  # non-finite floats in the report, their strings in the file
        if isinstance(value, float) and not math.isfinite(value):
            assert isinstance(saved[key], str) and (float(saved[key]) == value or math.isnan(value)), key
    for key in SINGLE_METRICS:
        assert f"{key}_healthy" in report and f"{key}_collapsed" in report


def test_report_of_collapsed_embeddings() -> None:
    report = collapse_report(torch.tensor([[0.5, -1.0, 2.0, 0.0]]).repeat(10, 1))
    assert report["effective_rank"] == 0.0
    assert report["std_of_normalized"] < 1e-12
    assert report["center_residual_ratio"] == math.inf and report["condition_number"] == math.inf
    assert report["condition_number"] > 1e3  # a float: comparisons work exactly when it matters
    assert report["eigenvalue_entropy"] == 0.0
    assert report["uniformity"] == 0.0
    assert max(report["spectrum"]) < 1e-20 and len(report["spectrum"]) == 4
    assert report["center_residual_ratio_collapsed"] == math.inf
    assert roundtrip(report)["condition_number"] == "inf" and float(roundtrip(report)["condition_number"]) == math.inf


def test_report_of_whitened_embeddings_has_healthy_values() -> None:
    batch, dim = 40, 8
    report = collapse_report(torch.tensor(whitened(batch, dim)))
    assert report["batch"] == batch and report["dim"] == dim
    np.testing.assert_allclose(report["spectrum"], np.ones(dim), atol=1e-10)
    assert report["effective_rank"] == pytest.approx(report["effective_rank_healthy"], abs=1e-9)
    assert report["condition_number"] == pytest.approx(report["condition_number_healthy"], abs=1e-9)
    assert report["eigenvalue_entropy"] == pytest.approx(report["eigenvalue_entropy_healthy"], abs=1e-12)
    assert report["std_of_normalized_healthy"] == pytest.approx(1 / math.sqrt(dim))
    assert report["center_residual_ratio_healthy"] == pytest.approx(1 / math.sqrt(batch - 1))
    assert report["uniformity_healthy"] == pytest.approx(-4.0 * batch / (batch - 1))


def test_report_values_equal_the_single_functions() -> None:
    z1 = torch.tensor(gaussian(24, 6, seed=2, mean_scale=1.0))
    z2 = z1 + 0.2 * torch.tensor(gaussian(24, 6, seed=3))
    report = collapse_report(z1, z2, eps=0.7, t=3.0, alpha=1.0)
    assert report["spectrum"] == spectrum(z1).tolist()
    assert report["effective_rank"] == effective_rank(z1)
    for key, value in isotropy(z1).items():
        assert report[key] == value
    assert report["std_of_normalized"] == std_of_normalized(z1)
    for key, value in center_residual(z1).items():
        assert report[key] == value
    assert report["uniformity"] == uniformity(z1, t=3.0)
    for key, value in coding_rate_terms(z1, eps=0.7).items():
        assert report[key] == value
    assert report["alignment"] == alignment(z1, z2, alpha=1.0)
    assert (report["eps"], report["t"], report["alpha"]) == (0.7, 3.0, 1.0)


def test_alignment_only_with_a_second_view() -> None:
    z = torch.randn(8, 4)
    assert "alignment" not in collapse_report(z)
    assert "alignment" in collapse_report(z, z)


def test_json_safe() -> None:
    value = {"a": [float("inf"), -math.inf, (1.0, float("nan"))], 2: torch.tensor(3.5), "t": torch.ones(2)}
    assert json_safe(value) == {"a": ["inf", "-inf", [1.0, "nan"]], "2": 3.5, "t": [1.0, 1.0]}


def test_report_checks_its_inputs() -> None:
    z = torch.randn(6, 4)
    with pytest.raises(ValueError, match="z2"):
        collapse_report(z, torch.randn(6, 5))
    with pytest.raises(ValueError, match="z1"):
        collapse_report(torch.randn(6))
    for name in ("eps", "t", "alpha"):
        with pytest.raises(ValueError, match=name):
            collapse_report(z, **{name: 0.0})


def test_label_free_entries_equal_the_single_metrics() -> None:
    z1 = torch.tensor(gaussian(300, 128, seed=4, mean_scale=1.0))
    z2 = z1 + 0.1 * torch.tensor(gaussian(300, 128, seed=5))
    report = collapse_report(z1, z2)
    assert report["rankme"] == rankme(z1) and report["rankme_samples"] == 300
    assert report["nesum"] == nesum(z1) and report["stable_rank"] == stable_rank(z1)
    assert report["w2_uniformity"] == w2_uniformity(z1)
    fit = alpha_req(z1)
    assert (report["alpha_req"], report["alpha_req_r2"]) == (fit["alpha"], fit["r2"])
    assert report["lidar"] == lidar([z1, z2])
    small = collapse_report(z1[:50, :8])
    assert "alpha_req" not in small and "lidar" not in small  # too few eigenvalues; one view

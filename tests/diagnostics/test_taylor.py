"""coding_rate_terms and taylor_gap against numpy float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl.diagnostics import coding_rate_terms, taylor_gap

from ._data import gaussian


def ref_terms(z: np.ndarray, eps: float) -> tuple[float, float]:
    """R = 1/2 logdet(I + a S) and T = 1/2 (a tr S - a^2/2 tr S^2), S = Z^T Z / B, a = d / eps^2."""
    batch, dim = z.shape
    s = z.T @ z / batch
    a = dim / eps**2
    _, logdet = np.linalg.slogdet(np.eye(dim) + a * s)
    return 0.5 * logdet, 0.5 * (a * np.trace(s) - a**2 / 2 * np.trace(s @ s))


@settings(max_examples=25, deadline=None)
@given(
    st.tuples(st.integers(2, 12), st.integers(1, 10), st.integers(0, 2**16)),
    st.sampled_from([0.05, 0.3, 1.0]),
    st.sampled_from([0.5, 1.0, 2.0]),
)
def test_coding_rate_terms_match_numpy(shape: tuple[int, int, int], scale: float, eps: float) -> None:
    batch, dim, seed = shape  # B < d and B >= d: both sides of Sylvester's identity
    z = scale * gaussian(batch, dim, seed, mean_scale=0.5)
    rate, surrogate = ref_terms(z, eps)
    got = coding_rate_terms(torch.tensor(z), eps=eps)
    assert got["coding_rate"] == pytest.approx(rate, rel=1e-10)
    assert got["taylor_surrogate"] == pytest.approx(surrogate, rel=1e-10, abs=1e-10)
    assert got["taylor_gap"] == pytest.approx(rate - surrogate, rel=1e-8, abs=1e-9)
    assert got["taylor_gap"] >= -1e-9  # log(1 + x) >= x - x^2 / 2 for x >= 0
    assert taylor_gap(torch.tensor(z), eps=eps) == got["taylor_gap"]


def test_taylor_gap_shrinks_like_the_cube_of_the_scale() -> None:
    # gap ~ a^3 tr(S^3) / 6 for small a ||S||, and S scales with the square of z
    z = torch.tensor(gaussian(64, 8, seed=0))
    small, smaller = taylor_gap(0.01 * z), taylor_gap(0.005 * z)
    assert small > 0 and smaller / small == pytest.approx(0.5**6, rel=0.01)


def test_taylor_gap_is_large_far_from_the_taylor_regime() -> None:
    z = torch.tensor(gaussian(64, 8, seed=1))
    rate, surrogate = ref_terms(z.numpy(), 0.5)
    assert taylor_gap(z) == pytest.approx(rate - surrogate, rel=1e-10)
    assert taylor_gap(z) > 10 * abs(rate)  # the surrogate is far below the log-det


def test_eps_is_checked() -> None:
    with pytest.raises(ValueError, match="eps"):
        taylor_gap(torch.randn(4, 3), eps=0.0)

"""Tests of covssl/objectives/emp_ssl.py against independent float64 references."""

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

from covssl.objectives.emp_ssl import bag_of_features, emp_ssl_loss
from covssl.objectives.rate_distortion import coding_rate

# The package may re-export functions named like their modules, so get the module itself this way.
emp_module = importlib.import_module("covssl.objectives.emp_ssl")

# (views, batch, dim) on both sides of B = d, so "auto" takes each path.
SHAPES = [(2, 3, 10), (4, 8, 16), (3, 16, 6), (5, 7, 7), (2, 20, 5)]


def _views(num_views: int, batch: int, dim: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return [
        (base + 0.6 * torch.randn(batch, dim, generator=gen, dtype=torch.float64))
        * (torch.rand(batch, 1, generator=gen, dtype=torch.float64) + 0.5)
        for _ in range(num_views)
    ]


def _reference(views: list[np.ndarray], eps: float, lambd: float) -> tuple[float, float, float]:
    """(loss, invariance, tcr) from the paper's formulas with explicit loops and numpy slogdet."""
    num_views = len(views)
    batch, dim = views[0].shape
    zn = [np.array([row / math.sqrt(sum(x * x for x in row)) for row in z]) for z in views]
    invariance = 0.0
    for b in range(batch):
        mean = sum(zn[v][b] for v in range(num_views)) / num_views
        mean_norm = math.sqrt(sum(x * x for x in mean))
        for v in range(num_views):
            invariance += sum(zn[v][b][k] * mean[k] for k in range(dim)) / mean_norm  # ||zn_vb|| = 1
    invariance /= num_views * batch
    tcr = 0.0
    for z in zn:
        cov = np.zeros((dim, dim))
        for b in range(batch):
            cov += np.outer(z[b], z[b])
        sign, logdet = np.linalg.slogdet(np.eye(dim) + dim / (batch * eps) * cov)
        assert sign > 0
        tcr += 0.5 * logdet / num_views
    return -lambd * invariance - tcr, invariance, tcr


def _official_style(views: list[torch.Tensor], eps: float, lambd: float) -> torch.Tensor:
    """The official forward, written independently: normalized z, F.cosine_similarity, torch.logdet."""
    z = [F.normalize(v, dim=1) for v in views]
    z_avg = torch.stack(z).mean(dim=0)
    sim = sum(F.cosine_similarity(zi, z_avg, dim=1).mean() for zi in z) / len(z)
    tcr = 0.0
    for zi in z:
        w = zi.T  # (d, B)
        p, m = w.shape
        tcr = tcr - torch.logdet(torch.eye(p, dtype=w.dtype) + p / (m * eps) * w @ w.T) / 2.0
    return lambd * -sim + tcr / len(z)


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected)).item()


# ---------------------------------------------------------------- reference values


@pytest.mark.parametrize(("num_views", "batch", "dim"), SHAPES)
@pytest.mark.parametrize(("eps", "lambd"), [(0.2, 200.0), (1.5, 0.3)])
def test_matches_an_explicit_loop_reference(num_views: int, batch: int, dim: int, eps: float, lambd: float) -> None:
    views = _views(num_views, batch, dim, seed=num_views * 100 + batch * 10 + dim)
    loss, invariance, tcr = _reference([v.numpy() for v in views], eps, lambd)
    for path in ("auto", "feature", "sample"):
        out = emp_ssl_loss(views, eps=eps, lambd=lambd, path=path)
        assert out["invariance"].item() == pytest.approx(invariance, rel=1e-10)
        assert out["tcr"].item() == pytest.approx(tcr, rel=1e-10)
        assert out["loss"].item() == pytest.approx(loss, rel=1e-10)


@pytest.mark.parametrize(("num_views", "batch", "dim"), SHAPES)
def test_matches_the_official_forward_in_value_and_gradient(num_views: int, batch: int, dim: int) -> None:
    views = _views(num_views, batch, dim, seed=batch + dim)
    ref_leaves = [v.clone().requires_grad_(True) for v in views]
    ref = _official_style(ref_leaves, eps=0.2, lambd=200.0)
    ref_grads = torch.autograd.grad(ref, ref_leaves)
    leaves = [v.clone().requires_grad_(True) for v in views]
    loss = emp_ssl_loss(leaves)["loss"]
    grads = torch.autograd.grad(loss, leaves)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    for g, r in zip(grads, ref_grads):
        assert _rel_err(g, r) < 1e-8


@pytest.mark.parametrize(("num_views", "batch", "dim"), SHAPES)
def test_paths_agree_in_value_and_gradient(num_views: int, batch: int, dim: int) -> None:
    views = _views(num_views, batch, dim, seed=3)
    results = {}
    for path in ("feature", "sample"):
        leaves = [v.clone().requires_grad_(True) for v in views]
        out = emp_ssl_loss(leaves, path=path)
        results[path] = (out["tcr"].detach(), torch.autograd.grad(out["loss"], leaves))
    assert _rel_err(results["sample"][0], results["feature"][0]) < 1e-8
    for gs, gf in zip(results["sample"][1], results["feature"][1]):
        assert _rel_err(gs, gf) < 1e-8


@pytest.mark.parametrize("path", ["feature", "sample"])
def test_gradcheck(path: str) -> None:
    views = [v.requires_grad_(True) for v in _views(3, 5, 4, seed=8)]
    assert torch.autograd.gradcheck(lambda *vs: emp_ssl_loss(list(vs), eps=0.7, lambd=2.0, path=path)["loss"], views)


def test_eps_is_unsquared_relative_to_covssl_coding_rate() -> None:
    views = _views(3, 12, 9, seed=4)
    out = emp_ssl_loss(views, eps=0.2)
    expected = sum(coding_rate(F.normalize(v, dim=1), eps=math.sqrt(0.2)) for v in views) / 3
    assert out["tcr"].item() == pytest.approx(expected.item(), rel=1e-12)


# ---------------------------------------------------------------- properties


def test_collapsed_views_give_a_worse_coding_rate() -> None:
    batch, dim, eps = 10, 8, 0.2
    spread = _views(4, batch, dim, seed=5)
    u = torch.randn(1, dim, dtype=torch.float64)
    collapsed = [u.expand(batch, dim) * (k + 1) for k in range(4)]  # every row the same direction
    out_collapsed = emp_ssl_loss(collapsed, eps=eps)
    # rank one: zn^T zn = B u u^T with ||u|| = 1, so each rate is 1/2 log(1 + d / eps)
    assert out_collapsed["tcr"].item() == pytest.approx(0.5 * math.log(1 + dim / eps), rel=1e-12)
    assert emp_ssl_loss(spread, eps=eps)["tcr"] > out_collapsed["tcr"] + 1.0
    assert out_collapsed["invariance"].item() == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    num_views=st.integers(2, 5),
    batch=st.integers(2, 10),
    dim=st.integers(1, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_identical_views_give_the_best_invariance(num_views: int, batch: int, dim: int, seed: int) -> None:
    views = _views(num_views, batch, dim, seed)
    same = emp_ssl_loss([views[0]] * num_views)["invariance"].item()
    scaled = emp_ssl_loss([views[0] * (k + 1.0) for k in range(num_views)])["invariance"].item()
    assert same == pytest.approx(1.0, abs=1e-12)
    assert scaled == pytest.approx(1.0, abs=1e-12)  # rows are normalized inside
    assert emp_ssl_loss(views)["invariance"].item() <= 1.0 + 1e-12


@settings(max_examples=20, deadline=None)
@given(num_views=st.integers(2, 5), batch=st.integers(2, 10), dim=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_view_and_batch_permutation_invariance(num_views: int, batch: int, dim: int, seed: int) -> None:
    views = _views(num_views, batch, dim, seed)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(batch, generator=gen)
    order = torch.randperm(num_views, generator=gen).tolist()
    base = emp_ssl_loss(views)
    for moved in (emp_ssl_loss([v[perm] for v in views]), emp_ssl_loss([views[i] for i in order])):
        for key in base:
            assert moved[key].item() == pytest.approx(base[key].item(), rel=1e-9, abs=1e-10)


def test_loss_maximizes_both_terms() -> None:
    # Unlike lightly's EMPSSLLoss, the coding rate enters with a minus sign.
    views = _views(3, 8, 6, seed=6)
    out = emp_ssl_loss(views, lambd=0.0)
    assert torch.equal(out["loss"], -out["tcr"])
    out = emp_ssl_loss(views, lambd=3.0)
    assert out["loss"].item() == pytest.approx((-3.0 * out["invariance"] - out["tcr"]).item(), rel=1e-14)


def test_degenerate_inputs_stay_finite() -> None:
    z = _views(1, 6, 5, seed=7)[0]
    z[0] = 0.0  # a zero row
    leaves = [z.clone().requires_grad_(True), (-z).clone().requires_grad_(True)]  # patch mean exactly 0
    out = emp_ssl_loss(leaves)
    grads = torch.autograd.grad(out["loss"], leaves)
    assert out["invariance"].item() == 0.0
    assert all(bool(torch.isfinite(t).all()) for t in (*out.values(), *grads))


# ---------------------------------------------------------------- bag of features


def test_bag_of_features_averages_raw_features() -> None:
    views = _views(4, 5, 3, seed=9)
    expected = np.mean(np.stack([v.numpy() for v in views]), axis=0)
    assert np.allclose(bag_of_features(views).numpy(), expected, rtol=1e-14, atol=0)
    normalized = bag_of_features(views, normalize=True).numpy()
    assert np.allclose(normalized, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-14, atol=0)
    single = torch.randn(1, 3)
    assert torch.equal(bag_of_features([single]), single)  # one patch, one image is allowed


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((torch.ones(3, 4),), "views"),
        (([],), "views"),
        (([torch.ones(3, 4), torch.ones(3, 5)],), r"views\[1\]"),
        (([torch.ones(3, 4)], "yes"), "normalize"),
    ],
)
def test_bag_of_features_bad_input(args: tuple, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}:"):
        bag_of_features(*args)


# ---------------------------------------------------------------- dtypes and bad input


def test_half_inputs_and_autocast_compute_in_float32() -> None:
    views = [v.float() for v in _views(3, 8, 32, seed=10)]
    reference = emp_ssl_loss(views)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = emp_ssl_loss(views)
    for key in reference:
        assert under_autocast[key].dtype == torch.float32
        assert torch.equal(under_autocast[key], reference[key])
    assert all(v.dtype == torch.float32 for v in emp_ssl_loss([v.half() for v in views]).values())
    assert emp_ssl_loss([v.double() for v in views])["loss"].dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"views": torch.ones(2, 4, 6)}, "views"),
        ({"views": [torch.randn(4, 6)]}, "views"),
        ({"views": [torch.randn(4, 6), torch.randn(4, 7)]}, r"views\[1\]"),
        ({"views": [torch.randn(4, 6), torch.randn(5, 6)]}, r"views\[1\]"),
        ({"views": [torch.randn(1, 6), torch.randn(1, 6)]}, r"views\[0\]"),
        ({"views": [torch.randn(4, 6), torch.full((4, 6), float("nan"))]}, r"views\[1\]"),
        ({"views": [torch.randn(4, 6), torch.ones(4, 6, dtype=torch.int32)]}, r"views\[1\]"),
        ({"views": [torch.randn(4, 6), "z"]}, r"views\[1\]"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -0.2}, "eps"),
        ({"eps": float("inf")}, "eps"),
        ({"lambd": -1.0}, "lambd"),
        ({"lambd": "200"}, "lambd"),
        ({"path": "gram"}, "path"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs: dict, name: str) -> None:
    args = {"views": [torch.randn(4, 6), torch.randn(4, 6)]} | kwargs
    with pytest.raises(ValueError, match=rf"^{name}:"):
        emp_ssl_loss(**args)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(emp_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0

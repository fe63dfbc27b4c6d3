"""Global-batch objectives under torch.distributed: 2 gloo ranks on two half-batches must give the
loss and the gradients of 1 process on the concatenated batch.

The reduction DDP applies is part of the check: rank r's gradient w.r.t. its own embeddings,
divided by the world size W (DDP averages parameter gradients over ranks, and parameters see
the embeddings only through the chain rule), must equal rows [r B, (r + 1) B) of the
single-process gradient. Per-rank losses hold the local alignment term, so it is their mean
over ranks that equals the single-process loss; global terms must be equal on every rank.

Float64 throughout, tolerance 1e-10. One spawn of two processes computes every case
(module-scoped fixture); each test compares one case with the single-process run done here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from covssl import distributed
from covssl.methods import METHODS, preset
from covssl.objectives import (
    Objective,
    barlow_twins_loss,
    coding_rate,
    correlation_penalty,
    covariance_penalty,
    frossl_loss,
    get_term,
    info_nce_loss,
    matrix_entropy,
    matrix_ssl_loss,
    mec_loss,
    spectral_contrastive_loss,
    taylor_coding_rate,
    tico_loss,
    uniformity,
    variance_hinge,
    vibcreg_loss,
    vicreg_loss,
    visreg,
    von_neumann_entropy,
    w2_uniformity,
)

from ._spawn import WORLD, run_on_two_ranks

N, D = 8, 6  # global batch (4 rows per rank), embedding dim
TOL = {"rtol": 1e-10, "atol": 1e-12}

STANDALONE: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "vicreg_loss": lambda a, b: vicreg_loss(a, b)["loss"],
    "barlow_twins_loss": lambda a, b: barlow_twins_loss(a, b)["loss"],
    "info_nce_loss": lambda a, b: info_nce_loss(a, b, temperature=0.3),
    "coding_rate": lambda a, b: coding_rate(a) + 2 * coding_rate(b),
    "taylor_coding_rate": lambda a, b: taylor_coding_rate(a),
    "matrix_entropy": lambda a, b: matrix_entropy(a),
    "uniformity": lambda a, b: uniformity(a),
    "variance_hinge": lambda a, b: variance_hinge(a) + variance_hinge(b),
    "covariance_penalty": lambda a, b: covariance_penalty(a),
    "frossl_loss": lambda a, b: frossl_loss([a, b])["loss"],
    "spectral_contrastive_loss": lambda a, b: spectral_contrastive_loss(a, b)["loss"],
    "mec_loss": lambda a, b: mec_loss(a, b)["loss"],
    "mec_loss_exact": lambda a, b: mec_loss(a, b, exact=True)["loss"],
    "matrix_ssl_loss": lambda a, b: matrix_ssl_loss(a, b)["loss"],
    "w2_uniformity": lambda a, b: w2_uniformity(a),
    "correlation_penalty": lambda a, b: correlation_penalty(a),
    "von_neumann_entropy": lambda a, b: von_neumann_entropy(a),
    "visreg": lambda a, b: visreg(a, num_slices=16)["loss"],
    "vibcreg_loss": lambda a, b: vibcreg_loss(a, b)["loss"],
    "tico_loss": lambda a, b: tico_loss(a, b, torch.zeros(a.shape[1], a.shape[1], dtype=a.dtype))[0]["loss"],
}
SHAPES = {"narrow": (N, D), "wide": (N, 12)}  # wide: d > N takes the (N x N) Sylvester paths
# W-MSE whitens windows of more rows than dimensions: the whole 8-row batch here (d = 6)
SPECS = {"w_mse": "wmse:1"}


def _batches(seed: int, rows: int, dim: int, steps: int = 2) -> list[list[torch.Tensor]]:
    """``steps`` batches of (z1, z2, p1, p2), float64, with correlated views (a realistic pair)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        z1 = torch.randn(rows, dim, generator=g, dtype=torch.float64)
        z2 = z1 + 0.5 * torch.randn(rows, dim, generator=g, dtype=torch.float64)
        p1, p2 = (torch.randn(rows, dim, generator=g, dtype=torch.float64) for _ in range(2))
        out.append([z1, z2, p1, p2])
    return out


def _leaves(batch: list[torch.Tensor], rows: slice) -> list[torch.Tensor]:
    return [t[rows].clone().requires_grad_(True) for t in batch]


def _run_objective(name: str, batches: list[list[torch.Tensor]], rows: slice) -> list[dict[str, Any]]:
    """The preset on this process's rows of each batch: loss, terms, input gradients, state."""
    objective = Objective.from_spec(SPECS[name], dim=D) if name in SPECS else preset(name, dim=D)
    steps = []
    for batch in batches:
        leaves = _leaves(batch, rows)
        if objective.needs_targets:  # SimDINO: p1, p2 stand in for an EMA teacher's global views
            out = objective.over_views(leaves[:2], num_global=2, targets=[t.detach() for t in leaves[2:]])
        else:
            out = objective(*(leaves if objective.needs_predictions else leaves[:2]))
        out.loss.backward()
        steps.append({
            "loss": out.loss.detach(),
            "terms": {k: v.detach() for k, v in out.terms.items()},
            "grads": [leaf.grad for leaf in leaves],
            "state": {k: v.clone() for k, v in objective.state_dict().items()},
        })
    return steps


# V-view objectives (multi-crop: 2 global + 4 local views) against one process
MULTI_VIEW = {name: preset(name, dim=D).spec for name in ("vicreg", "mmcr", "lejepa", "emp_ssl", "frossl", "simdino")}


def _multi_views(seed: int = 2, count: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(N, D, generator=g, dtype=torch.float64)
    return [base + 0.5 * torch.randn(N, D, generator=g, dtype=torch.float64) for _ in range(count)]


def _run_multi_view(spec: str, views: list[torch.Tensor], rows: slice) -> dict[str, Any]:
    objective = Objective.from_spec(spec, dim=D)
    leaves = _leaves(views, rows)
    teacher = [t[rows] for t in _multi_views(seed=3, count=2)] if objective.needs_targets else None  # EMA's globals
    out = objective.over_views(leaves, num_global=2, targets=teacher)
    out.loss.backward()
    return {"loss": out.loss.detach(), "terms": {k: v.detach() for k, v in out.terms.items()},
            "grads": [leaf.grad for leaf in leaves]}


def _run_standalone(fn: Callable, batch: list[torch.Tensor], rows: slice) -> dict[str, Any]:
    """fn on the gathered views (the identity in one process)."""
    z1, z2 = _leaves(batch[:2], rows)
    value = fn(distributed.gather(z1), distributed.gather(z2))
    value.backward()
    return {"loss": value.detach(), "grads": [z1.grad, z2.grad]}


def _gather_keeping_only_local_grad(z: torch.Tensor) -> torch.Tensor:
    """The classic bug: plain dist.all_gather, then the local slot put back so it keeps its gradient."""
    parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, z.detach().contiguous())
    parts[dist.get_rank()] = z
    return torch.cat(parts)


def _plain_all_reduce(t: torch.Tensor) -> torch.Tensor:
    """The other classic bug: dist.all_reduce in place, invisible to autograd."""
    t = t.clone()
    dist.all_reduce(t)
    return t


def _cov_penalty_from_sums(z: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """(1/d) sum_{i != j} C_ij^2 with C built from all-reduced sums: n, sum z, Z^T Z."""
    n = reduce(z.new_tensor([float(z.shape[0])]))[0]
    mean = reduce(z.sum(dim=0)) / n  # (d,)
    second = reduce(z.T @ z)  # (d, B) @ (B, d) -> (d, d)
    c = (second - n * torch.outer(mean, mean)) / (n - 1)
    return (c.square().sum() - c.diagonal().square().sum()) / z.shape[1]


def _worker(rank: int, payload: dict[str, Any]) -> dict[str, Any]:
    import covssl.objectives.objective as objective_module

    rows = distributed.local_rows(N)
    batches = payload["batches"]
    result: dict[str, Any] = {"presets": {name: _run_objective(name, batches, rows) for name in METHODS}}
    result["multi_view"] = {name: _run_multi_view(spec, payload["multi"], rows) for name, spec in MULTI_VIEW.items()}
    result["standalone"] = {
        (name, shape): _run_standalone(fn, payload["shaped"][shape], rows)
        for name, fn in STANDALONE.items()
        for shape in SHAPES
    }
    honest_gather = objective_module.gather
    objective_module.gather = _gather_keeping_only_local_grad
    try:
        result["no_grad_gather"] = {name: _run_objective(name, batches, rows) for name in ("vicreg", "barlow_twins")}
    finally:
        objective_module.gather = honest_gather
    for key, reduce in (("plain_all_reduce", _plain_all_reduce), ("all_reduce_sum", distributed.all_reduce_sum)):
        z = batches[0][0][rows].clone().requires_grad_(True)
        value = _cov_penalty_from_sums(z, reduce)
        value.backward()
        result[key] = {"loss": value.detach(), "grads": [z.grad]}
    return result


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    payload = {
        "batches": _batches(0, N, D),
        "shaped": {k: _batches(1, *s, steps=1)[0] for k, s in SHAPES.items()},
        "multi": _multi_views(),
    }
    return run_on_two_ranks(_worker, Path(tmp_path_factory.mktemp("objectives")), payload)


def _rank_rows(r: int) -> slice:
    size = N // WORLD
    return slice(r * size, (r + 1) * size)


def _check_grads(per_rank: list[list[torch.Tensor | None]], reference: list[torch.Tensor | None]) -> None:
    for i, ref in enumerate(reference):
        if ref is None:  # an input the objective does not use (p1, p2 outside SimSiam)
            assert all(grads[i] is None for grads in per_rank)
            continue
        for r, grads in enumerate(per_rank):
            torch.testing.assert_close(grads[i] / WORLD, ref[_rank_rows(r)], **TOL)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_preset_matches_one_process_on_the_global_batch(ranks: list[dict[str, Any]], name: str) -> None:
    reference = _run_objective(name, _batches(0, N, D), slice(None))
    for step, ref in enumerate(reference):  # two steps: CorInfoMax's running state must stay in sync
        per_rank = [r["presets"][name][step] for r in ranks]
        torch.testing.assert_close(sum(p["loss"] for p in per_rank) / WORLD, ref["loss"], **TOL)
        for term, value in ref["terms"].items():
            if get_term(term).scope == "global":  # computed on the gathered batch: equal everywhere
                for p in per_rank:
                    torch.testing.assert_close(p["terms"][term], value, **TOL)
            else:  # a mean over the local rows: its mean over ranks is the global mean
                torch.testing.assert_close(sum(p["terms"][term] for p in per_rank) / WORLD, value, **TOL)
        _check_grads([p["grads"] for p in per_rank], ref["grads"])
        for key, value in ref["state"].items():
            for p in per_rank:
                torch.testing.assert_close(p["state"][key], value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(MULTI_VIEW))
def test_a_multi_crop_objective_matches_one_process(ranks: list[dict[str, Any]], name: str) -> None:
    reference = _run_multi_view(MULTI_VIEW[name], _multi_views(), slice(None))
    per_rank = [r["multi_view"][name] for r in ranks]
    torch.testing.assert_close(sum(p["loss"] for p in per_rank) / WORLD, reference["loss"], **TOL)
    for term, value in reference["terms"].items():
        if get_term(term).scope == "global":
            for p in per_rank:
                torch.testing.assert_close(p["terms"][term], value, **TOL)
    _check_grads([p["grads"] for p in per_rank], reference["grads"])


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("name", sorted(STANDALONE))
def test_standalone_function_on_gathered_views_matches_one_process(
    ranks: list[dict[str, Any]], name: str, shape: str
) -> None:
    reference = _run_standalone(STANDALONE[name], _batches(1, *SHAPES[shape], steps=1)[0], slice(None))
    per_rank = [r["standalone"][(name, shape)] for r in ranks]
    for p in per_rank:  # every term is evaluated on the whole gathered batch
        torch.testing.assert_close(p["loss"], reference["loss"], **TOL)
    _check_grads([p["grads"] for p in per_rank], reference["grads"])


def _vicreg_reference(z1: torch.Tensor, z2: torch.Tensor) -> dict[str, float]:
    """VICReg's three terms from the paper's formulas, over the batch given (N - 1 in Var and C)."""
    def var(z: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(((z - z.mean(0)) ** 2).sum(0) / (z.shape[0] - 1) + 1e-4)
        return torch.clamp(1 - std, min=0).mean()

    def cov(z: torch.Tensor) -> torch.Tensor:
        zc = z - z.mean(0)
        c = zc.T @ zc / (z.shape[0] - 1)  # (d, N) @ (N, d) -> (d, d)
        return (c**2).sum() - (torch.diagonal(c) ** 2).sum()

    return {
        "mse": float(((z1 - z2) ** 2).mean()),
        "variance_hinge": float((var(z1) + var(z2)) / 2),
        "covariance_penalty": float((cov(z1) + cov(z2)) / z1.shape[1]),
    }


def test_vicreg_variance_and_covariance_use_the_global_batch_with_n_minus_1(ranks: list[dict[str, Any]]) -> None:
    z1, z2 = _batches(0, N, D)[0][:2]
    expected = _vicreg_reference(z1, z2)
    half = _vicreg_reference(z1[_rank_rows(0)], z2[_rank_rows(0)])  # what a per-rank statistic gives
    for r in ranks:
        terms = r["presets"]["vicreg"][0]["terms"]
        for term in ("variance_hinge", "covariance_penalty"):
            assert float(terms[term]) == pytest.approx(expected[term], rel=1e-10)
            assert abs(half[term] - expected[term]) > 1e-3  # the test can tell local from global
    mean_mse = sum(float(r["presets"]["vicreg"][0]["terms"]["mse"]) for r in ranks) / WORLD
    assert mean_mse == pytest.approx(expected["mse"], rel=1e-10)


def _barlow_reference(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, eps: float = 1e-5) -> float:
    """Barlow Twins from [Zbontar et al. 2021]: standardize over the batch (biased var), C = z1n^T z2n / N."""
    def standardize(z: torch.Tensor) -> torch.Tensor:
        zc = z - z.mean(0)
        return zc / torch.sqrt((zc**2).mean(0) + eps)

    c = standardize(z1).T @ standardize(z2) / z1.shape[0]  # (d, N) @ (N, d) -> (d, d)
    on = ((1 - torch.diagonal(c)) ** 2).sum()
    off = (c**2).sum() - (torch.diagonal(c) ** 2).sum()
    return float(on + lambd * off)


def test_barlow_twins_standardizes_and_correlates_over_the_global_batch(ranks: list[dict[str, Any]]) -> None:
    z1, z2 = _batches(0, N, D)[0][:2]
    expected = _barlow_reference(z1, z2)
    assert abs(_barlow_reference(z1[_rank_rows(1)], z2[_rank_rows(1)]) - expected) > 1e-3
    for r in ranks:
        assert float(r["presets"]["barlow_twins"][0]["terms"]["barlow_twins"]) == pytest.approx(expected, rel=1e-10)


def _nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """NT-Xent written out: anchor i, positive i +- N, negatives every other row of [z1; z2]."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    rows = z.shape[0]
    total = 0.0
    for i in range(rows):
        pos = (i + rows // 2) % rows
        sims = [float(z[i] @ z[k]) / tau for k in range(rows) if k != i]
        total += -(float(z[i] @ z[pos]) / tau - torch.logsumexp(torch.tensor(sims, dtype=torch.float64), 0).item())
    return total / rows


def test_info_nce_takes_its_negatives_from_all_ranks(ranks: list[dict[str, Any]]) -> None:
    z1, z2 = _batches(0, N, D)[0][:2]
    expected = _nt_xent_reference(z1, z2, tau=0.5)
    assert abs(_nt_xent_reference(z1[_rank_rows(0)], z2[_rank_rows(0)], 0.5) - expected) > 1e-3
    for r in ranks:
        assert float(r["presets"]["simclr"][0]["terms"]["info_nce"]) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", ["vicreg", "barlow_twins"])
def test_a_gather_without_gradient_gives_the_right_loss_but_wrong_gradients(
    ranks: list[dict[str, Any]], name: str
) -> None:
    """The teeth: equal losses are not enough; the gradient check catches the no-grad gather."""
    reference = _run_objective(name, _batches(0, N, D), slice(None))[0]
    per_rank = [r["no_grad_gather"][name][0] for r in ranks]
    torch.testing.assert_close(sum(p["loss"] for p in per_rank) / WORLD, reference["loss"], **TOL)
    with pytest.raises(AssertionError):
        _check_grads([p["grads"] for p in per_rank], reference["grads"])


def test_a_plain_all_reduce_breaks_the_gradient_and_the_differentiable_one_does_not(
    ranks: list[dict[str, Any]],
) -> None:
    z = _batches(0, N, D)[0][0].clone().requires_grad_(True)
    value = _cov_penalty_from_sums(z, lambda t: t)
    value.backward()
    zc = z.detach() - z.detach().mean(0)
    c = zc.T @ zc / (N - 1)  # (d, N) @ (N, d) -> (d, d): the penalty's own definition
    assert float(value.detach()) == pytest.approx(float(((c**2).sum() - (c.diagonal() ** 2).sum()) / D), rel=1e-10)
    for key in ("all_reduce_sum", "plain_all_reduce"):
        for r in ranks:  # the forward value is right either way
            torch.testing.assert_close(r[key]["loss"], value.detach(), **TOL)
    _check_grads([r["all_reduce_sum"]["grads"] for r in ranks], [z.grad])
    with pytest.raises(AssertionError):
        _check_grads([r["plain_all_reduce"]["grads"] for r in ranks], [z.grad])


def _nan_on_rank_zero(rank: int, _payload: object) -> str:
    from covssl._checks import NonFiniteError

    z1, z2 = torch.randn(8, 16, dtype=torch.float64), torch.randn(8, 16, dtype=torch.float64)
    if rank == 0:
        z1[0, 0] = float("nan")
    try:
        preset("vicreg")(z1, z2)
    except NonFiniteError as error:
        return str(error)
    return "no error"


def test_nan_on_one_rank_raises_on_every_rank_instead_of_hanging(tmp_path) -> None:
    messages = run_on_two_ranks(_nan_on_rank_zero, tmp_path, None)
    assert all("at least one rank" in m for m in messages), messages

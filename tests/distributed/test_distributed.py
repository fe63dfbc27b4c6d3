"""covssl.distributed: identities without a process group, and on 2 gloo ranks the collectives,
the global-batch BatchNorm, a DDP training step and the sharded augmentation all reproduce one
process on the concatenated batch.

References are single-process float64 computations on the whole batch (torch's own
BatchNorm, the same model stepped without DDP), tolerance 1e-10; one spawn computes every
two-rank case (module-scoped fixture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from covssl import distributed
from covssl.augment import AugmentConfig, TwoViewAugment, ViewConfig
from covssl.models.global_batchnorm import GlobalBatchNorm, convert_sync_batchnorm
from covssl.methods import preset
from covssl.distributed import local_rows
from covssl.train.randomness import augment_generator

from ._spawn import WORLD, run_on_two_ranks

N = 8  # global batch: 4 rows per rank
TOL = {"rtol": 1e-10, "atol": 1e-12}
DDP_PRESETS = ("vicreg", "barlow_twins", "simclr", "coding_rate", "corinfomax")
BN_CASES = (("1d", 0.1, True), ("2d", None, True), ("1d_no_affine", 0.1, False))  # key, momentum, affine
AUGMENT = AugmentConfig(
    image_size=12, view1=ViewConfig(blur_prob=0.5), view2=ViewConfig(blur_prob=0.3, solarize_prob=0.5)
)


# ---------------------------------------------------------------- without a process group


def test_without_a_process_group_everything_is_the_identity() -> None:
    z = torch.randn(4, 3)
    assert distributed.gather(z) is z
    assert distributed.all_reduce_sum(z) is z and distributed.all_reduce_mean(z) is z
    assert (distributed.world_size(), distributed.rank(), distributed.is_distributed()) == (1, 0, False)
    assert distributed.is_main_process()
    assert distributed.local_rows(6) == slice(0, 6)
    assert distributed.mean_over_ranks({"loss": 2.5}) == {"loss": 2.5}
    assert distributed.max_over_ranks(7) == 7
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    distributed.barrier()
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")


def test_torchrun_environment_decides_launch_and_printing(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert not distributed.launched_by_torchrun()
    with distributed.process_group(torch.device("cpu")):  # not launched: no group is created
        assert not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert not distributed.launched_by_torchrun()  # torchrun with one process: nothing to set up
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.launched_by_torchrun()
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_main_process()  # after the group is gone, rank 1 still does not print


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(2, 6),
    spatial=st.sampled_from([(), (3,), (2, 2)]),
    momentum=st.sampled_from([0.1, 0.5, None]),
    seed=st.integers(0, 1000),
)
def test_global_batchnorm_is_plain_batchnorm_in_one_process(
    rows: int, spatial: tuple[int, ...], momentum: float | None, seed: int
) -> None:
    torch.manual_seed(seed)
    x = torch.randn(rows, 4, *spatial, dtype=torch.float64) * 3 + 1
    ours = GlobalBatchNorm(4, momentum=momentum).double()
    theirs = nn.BatchNorm1d(4, momentum=momentum).double() if len(spatial) < 2 else nn.BatchNorm2d(4, momentum=momentum).double()
    for _ in range(2):
        torch.testing.assert_close(ours(x), theirs(x), **TOL)
    torch.testing.assert_close(ours.running_var, theirs.running_var, **TOL)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x), **TOL)


def test_global_batchnorm_rejects_a_vector() -> None:
    with pytest.raises(ValueError, match="input: expected"):
        GlobalBatchNorm(3)(torch.randn(3))


def test_convert_sync_batchnorm_moves_parameters_and_keeps_frozen_copies_frozen() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 5), nn.BatchNorm1d(5))
    frozen = nn.Sequential(nn.BatchNorm1d(5, affine=False))
    frozen.requires_grad_(False)
    wrapper = nn.ModuleDict({"online": model, "target": frozen})
    x = torch.randn(6, 3, 4, 4)
    before = model(x)
    weight = model[1].weight
    converted = convert_sync_batchnorm(wrapper, torch.device("cpu"))
    assert converted is wrapper
    assert isinstance(model[1], GlobalBatchNorm) and isinstance(model[4], GlobalBatchNorm)
    assert isinstance(frozen[0], GlobalBatchNorm) and not frozen[0].affine
    assert model[1].weight is weight  # moved, not copied: an optimizer built before still works
    assert not any(p.requires_grad for p in frozen.parameters())
    torch.testing.assert_close(model(x), before)
    single = convert_sync_batchnorm(nn.BatchNorm1d(3), torch.device("cpu"))
    assert isinstance(single, GlobalBatchNorm)


# ---------------------------------------------------------------- two gloo ranks


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 6)).double()


def _train_steps(name: str, model: nn.Module, forward: nn.Module, data: list[torch.Tensor], rows: slice) -> dict:
    """Two SGD steps of a preset objective on this process's rows; the model's state afterwards."""
    objective = preset(name, dim=6).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for x1, x2 in zip(data[0::2], data[1::2]):
        a, b = x1[rows], x2[rows]
        z = forward(torch.cat([a, b]))  # (2B, 6): one pass, shared BN statistics as in SSLModel
        loss = objective(z[: len(a)], z[len(a) :]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def _bn_case(bn: nn.Module, x: torch.Tensor, weights: torch.Tensor) -> dict[str, Any]:
    x = x.clone().requires_grad_(True)
    y = bn(x)
    (y * weights).sum().backward()
    case = {"y": y.detach(), "x_grad": x.grad}
    if bn.affine:
        case |= {"w_grad": bn.weight.grad, "b_grad": bn.bias.grad}
    case["state"] = {k: v.clone() for k, v in bn.state_dict().items()}
    bn.eval()
    case["eval_y"] = bn(x.detach())
    return case


def _worker(rank: int, payload: dict[str, Any]) -> dict[str, Any]:
    from torch.nn.parallel import DistributedDataParallel

    rows = distributed.local_rows(N)
    out: dict[str, Any] = {
        "world": (distributed.world_size(), distributed.rank(), distributed.is_main_process()),
        "rows": rows,
        "mean": distributed.mean_over_ranks({"a": float(rank + 1), "b": float("nan") if rank else 0.0}),
        "max": distributed.max_over_ranks(3 * rank),
        "broadcast": distributed.broadcast_object({"from": rank}),
    }
    try:
        distributed.local_rows(7)
    except ValueError as error:
        out["rows_error"] = str(error)
    x = torch.tensor([float(rank + 1)], dtype=torch.float64, requires_grad=True)
    y = distributed.all_reduce_mean(x * x)
    y.backward()
    out["reduce_mean"] = (y.detach(), x.grad)
    gathered = distributed.gather(x * 10)
    out["gather"] = gathered.detach()
    out["bn"] = {
        key: _bn_case(GlobalBatchNorm(3, momentum=m, affine=affine).double(), x_full[rows], w_full[rows])
        for (key, m, affine), (x_full, w_full) in zip(BN_CASES, payload["bn"])
    }
    x32 = payload["offset"][rows].clone().requires_grad_(True)  # float32, mean 1000, std ~1
    out["offset"] = GlobalBatchNorm(3)(x32).detach()
    out["ddp"] = {}
    for name in DDP_PRESETS:
        model = convert_sync_batchnorm(_tiny_model(), torch.device("cpu"))
        out["ddp"][name] = _train_steps(name, model, DistributedDataParallel(model), payload["ddp"], rows)
    local_bn = _tiny_model()  # the teeth: DDP without global BN statistics
    out["ddp_local_bn"] = _train_steps("vicreg", local_bn, DistributedDataParallel(local_bn), payload["ddp"], rows)
    images = payload["images"][rows]
    out["views"] = TwoViewAugment(AUGMENT)(images, generator=augment_generator(3, 5), rows=local_rows(N), global_batch=N)
    return out


def _payload() -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    bn = [
        (torch.randn(N, 3, generator=g, dtype=torch.float64) * 2 + 1, torch.randn(N, 3, generator=g, dtype=torch.float64)),
        (torch.randn(N, 3, 2, 2, generator=g, dtype=torch.float64) - 1, torch.randn(N, 3, 2, 2, generator=g, dtype=torch.float64)),
        (torch.randn(N, 3, generator=g, dtype=torch.float64) * 3 - 2, torch.randn(N, 3, generator=g, dtype=torch.float64)),
    ]
    return {
        "bn": bn,
        "ddp": [torch.randn(N, 5, generator=g, dtype=torch.float64) for _ in range(4)],
        "images": torch.randint(0, 256, (N, 3, 20, 20), generator=g, dtype=torch.uint8),
        "offset": (1000 + torch.randn(N, 3, 4, 4, generator=g, dtype=torch.float64)).float(),
    }


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_on_two_ranks(_worker, Path(tmp_path_factory.mktemp("distributed")), _payload())


def _rank_rows(r: int) -> slice:
    return slice(r * N // WORLD, (r + 1) * N // WORLD)


def test_ranks_rows_and_small_collectives(ranks: list[dict[str, Any]]) -> None:
    assert [r["world"] for r in ranks] == [(2, 0, True), (2, 1, False)]
    assert [r["rows"] for r in ranks] == [slice(0, 4), slice(4, 8)]  # disjoint, in rank order, all rows
    for r in ranks:
        assert r["mean"]["a"] == 1.5
        assert r["mean"]["b"] != r["mean"]["b"]  # a NaN on one rank is a NaN everywhere
        assert r["max"] == 3
        assert r["broadcast"] == {"from": 0}
        assert "global_batch: expected a multiple of the world size 2, got 7" in r["rows_error"]
        assert r["gather"].tolist() == [10.0, 20.0]


def test_all_reduce_mean_is_differentiable(ranks: list[dict[str, Any]]) -> None:
    # y = (x_0^2 + x_1^2) / 2 on every rank; rank r's gradient is that of sum_r' y_r' = x_0^2 + x_1^2
    for r, result in enumerate(ranks):
        value, grad = result["reduce_mean"]
        assert float(value) == 2.5
        assert float(grad) == 2.0 * (r + 1)


@pytest.mark.parametrize("case", range(len(BN_CASES)))
def test_global_batchnorm_matches_batchnorm_on_the_global_batch(ranks: list[dict[str, Any]], case: int) -> None:
    key, momentum, affine = BN_CASES[case]
    x, weights = _payload()["bn"][case]
    layer = nn.BatchNorm2d if x.dim() == 4 else nn.BatchNorm1d
    ref = _bn_case(layer(3, momentum=momentum, affine=affine).double(), x, weights)
    for r, result in enumerate(ranks):
        case = result["bn"][key]
        rows = _rank_rows(r)
        for name in ("y", "x_grad", "eval_y"):
            torch.testing.assert_close(case[name], ref[name][rows], **TOL)
        for name, value in ref["state"].items():  # running mean / unbiased var / count
            torch.testing.assert_close(case["state"][name], value, **TOL)
    for name in ("w_grad", "b_grad") if affine else ():  # each rank holds its share of the parameter gradient
        torch.testing.assert_close(sum(result["bn"][key][name] for result in ranks), ref[name], **TOL)


def test_global_batchnorm_statistics_are_stable_in_float32(ranks: list[dict[str, Any]]) -> None:
    """Mean 1000, std 1: E[x^2] - E[x]^2 in float32 would lose the variance (1e6 +- 0.06)."""
    x = _payload()["offset"]
    reference = nn.BatchNorm2d(3).double()(x.double())  # float64 on the whole batch
    for r, result in enumerate(ranks):
        torch.testing.assert_close(result["offset"].double(), reference[_rank_rows(r)], rtol=0, atol=1e-3)


@pytest.mark.parametrize("name", DDP_PRESETS)
def test_ddp_steps_match_one_process_on_the_global_batch(ranks: list[dict[str, Any]], name: str) -> None:
    """Gather (sum in backward) + DDP (mean over ranks) = the single-process gradient: same weights."""
    model = _tiny_model()
    reference = _train_steps(name, model, model, _payload()["ddp"], slice(None))
    initial = _tiny_model().state_dict()
    assert (reference["0.weight"] - initial["0.weight"]).abs().max() > 1e-3  # the steps moved the weights
    for result in ranks:
        for key, value in reference.items():
            torch.testing.assert_close(result["ddp"][name][key], value, **TOL)


def test_ddp_with_per_rank_batchnorm_differs(ranks: list[dict[str, Any]]) -> None:
    model = _tiny_model()
    reference = _train_steps("vicreg", model, model, _payload()["ddp"], slice(None))
    with pytest.raises(AssertionError):
        torch.testing.assert_close(ranks[0]["ddp_local_bn"]["0.weight"], reference["0.weight"], **TOL)


def test_sharded_augmentation_gives_each_sample_the_views_one_process_gives_it(ranks: list[dict[str, Any]]) -> None:
    images = _payload()["images"]
    augment = TwoViewAugment(AUGMENT)
    single = augment(images, generator=augment_generator(3, 5), rows=slice(0, N), global_batch=N)
    direct = augment(images, generator=augment_generator(3, 5))
    for ours, theirs in zip(single, direct):  # one process: exactly TwoViewAugment's views
        assert torch.equal(ours, theirs)
    for r, result in enumerate(ranks):
        for view, full in zip(result["views"], single):
            torch.testing.assert_close(view, full[_rank_rows(r)], rtol=0, atol=1e-6)
    assert not torch.allclose(ranks[0]["views"][0], ranks[1]["views"][0])  # ranks do not reuse draws

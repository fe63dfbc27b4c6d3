"""What every rank agrees on without talking: the data order, its rows, the augmentation draws and
the learning rate (covssl.train.loop and covssl.train.optim under torch.distributed).

No process group is needed: ``covssl.distributed.rank`` / ``world_size`` are patched to play
each rank in turn.
"""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from covssl import distributed
from covssl.config import OptimConfig
from covssl.train.randomness import augment_generator, epoch_order
from covssl.train.optim import scaled_lr


def _rows_as(rank: int, world: int, global_batch: int) -> slice:
    with mock.patch.object(distributed, "rank", return_value=rank), mock.patch.object(
        distributed, "world_size", return_value=world
    ):
        return distributed.local_rows(global_batch)


@settings(max_examples=25, deadline=None)
@given(
    world=st.sampled_from([1, 2, 3, 4]),
    local=st.integers(1, 5),
    extra=st.integers(0, 30),
    seed=st.integers(0, 10_000),
    epoch=st.integers(0, 20),
)
def test_ranks_split_each_global_batch_like_a_distributed_sampler(
    world: int, local: int, extra: int, seed: int, epoch: int
) -> None:
    global_batch = world * local
    images = global_batch + extra  # at least one step; the remainder of the epoch is dropped
    order = epoch_order(images, seed, epoch)
    assert sorted(order.tolist()) == list(range(images))  # a permutation of the training set
    assert torch.equal(order, epoch_order(images, seed, epoch))  # the same on every rank and resume
    seen: list[int] = []
    for step in range(images // global_batch):
        batch = order[step * global_batch : (step + 1) * global_batch]
        shards = [batch[_rows_as(r, world, global_batch)] for r in range(world)]
        assert all(len(s) == local for s in shards)
        assert torch.equal(torch.cat(shards), batch)  # in rank order: what gather() reassembles
        seen += batch.tolist()
    assert len(seen) == len(set(seen)) == (images // global_batch) * global_batch  # no image twice


def test_each_epoch_has_its_own_order() -> None:
    orders = {tuple(epoch_order(50, 7, e).tolist()) for e in range(5)}
    assert len(orders) == 5


def test_augmentation_draws_depend_on_seed_and_step_only() -> None:
    draw = lambda seed, step: torch.rand(6, generator=augment_generator(seed, step))  # noqa: E731
    assert torch.equal(draw(0, 3), draw(0, 3))  # every rank, and a resumed run, draw the same
    assert not torch.equal(draw(0, 3), draw(0, 4))
    assert not torch.equal(draw(0, 3), draw(1, 3))
    # apart from the data order's stream, seeded by (seed, epoch): torch keeps 32 bits of a seed
    # only, so an affine seed would replay epoch k's permutation stream at step k
    orders = {tuple(epoch_order(20, s, e).tolist()) for s in range(3) for e in range(40)}
    replays = {tuple(torch.randperm(20, generator=augment_generator(s, k)).tolist()) for s in range(3) for k in range(40)}
    assert not orders & replays


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 8192), reference=st.sampled_from([128, 256, 512]), lr=st.floats(1e-4, 10.0))
def test_learning_rate_scales_with_the_global_batch(batch: int, reference: int, lr: float) -> None:
    """Goyal et al. 2017 (https://arxiv.org/abs/1706.02677): lr = base * N / N_ref; sqrt and none too."""
    expected = {"linear": lr * batch / reference, "sqrt": lr * math.sqrt(batch / reference), "none": lr}
    for rule, value in expected.items():
        config = OptimConfig(lr=lr, lr_scaling=rule, lr_reference_batch=reference)
        assert scaled_lr(config, batch) == pytest.approx(value, rel=1e-12)

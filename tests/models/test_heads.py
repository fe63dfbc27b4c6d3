"""Projector / Predictor: float64 reference forward passes, structure, and the paper presets."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from covssl.models.heads import Predictor, Projector

EPS = 1e-5  # BatchNorm1d default


def bn_train(h: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None) -> torch.Tensor:
    """BatchNorm in training mode: biased batch variance."""
    out = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + EPS)
    return out if gamma is None else out * gamma + beta


def randomize(module: nn.Module) -> None:
    # Non-trivial BN affine parameters so that the reference has to apply them.
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))


def linears_and_bns(module: nn.Module) -> tuple[list[nn.Linear], list[nn.BatchNorm1d]]:
    return (
        [m for m in module.modules() if isinstance(m, nn.Linear)],
        [m for m in module.modules() if isinstance(m, nn.BatchNorm1d)],
    )


@settings(max_examples=25, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
    last_batch_norm=st.booleans(),
    last_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_projector_matches_float64_reference(
    hidden: list[int], last_batch_norm: bool, last_bias: bool, seed: int
) -> None:
    torch.manual_seed(seed)
    proj = Projector(5, hidden, 4, last_batch_norm=last_batch_norm, last_bias=last_bias).double().train()
    randomize(proj)
    x = torch.randn(7, 5, dtype=torch.float64)
    lins, bns = linears_and_bns(proj)
    h = x
    for i in range(len(hidden)):  # z = W_L ReLU(BN(W_{L-1} ... ReLU(BN(W_1 h))))
        h = torch.relu(bn_train(h @ lins[i].weight.T, bns[i].weight, bns[i].bias))
    z = h @ lins[-1].weight.T
    if last_bias:
        z = z + lins[-1].bias
    if last_batch_norm:
        z = bn_train(z, None, None)
    torch.testing.assert_close(proj(x), z)


def test_projector_structure() -> None:
    proj = Projector(16, (32, 8), 4)
    lins, bns = linears_and_bns(proj)
    assert [(m.in_features, m.out_features) for m in lins] == [(16, 32), (32, 8), (8, 4)]
    assert [m.bias is None for m in lins] == [True, True, False]  # BN makes hidden biases dead
    assert [m.num_features for m in bns] == [32, 8]
    assert sum(isinstance(m, nn.ReLU) for m in proj.modules()) == 2
    assert (proj.in_dim, proj.hidden_dims, proj.out_dim) == (16, (32, 8), 4)

    plain = Projector(16, (32,), 4, batch_norm=False, last_bias=False)
    lins, bns = linears_and_bns(plain)
    assert bns == [] and lins[0].bias is not None and lins[1].bias is None

    simsiam_like = Projector(16, (32,), 4, last_batch_norm=True)
    _, bns = linears_and_bns(simsiam_like)
    assert not bns[-1].affine and bns[-1].num_features == 4


def test_output_batch_norm_standardizes_the_embedding() -> None:
    torch.manual_seed(0)
    proj = Projector(8, (16,), 6, last_batch_norm=True).train()
    z = proj(torch.randn(32, 8) * 5 + 3).double()
    torch.testing.assert_close(z.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(6, dtype=torch.float64), atol=1e-3, rtol=0)


def test_predictor_matches_float64_reference() -> None:
    torch.manual_seed(0)
    pred = Predictor(6, 3).double().train()
    randomize(pred)
    (l1, l2), (bn,) = linears_and_bns(pred)
    assert l1.bias is None and l2.bias is not None
    x = torch.randn(9, 6, dtype=torch.float64)
    # p = W2 ReLU(BN(W1 z)) + b2
    expected = torch.relu(bn_train(x @ l1.weight.T, bn.weight, bn.bias)) @ l2.weight.T + l2.bias
    torch.testing.assert_close(pred(x), expected)
    assert (pred.in_dim, pred.hidden_dim, pred.out_dim) == (6, 3, 6)


def test_bad_dims_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="in_dim"):
        Projector(0, (4,), 4)
    with pytest.raises(ValueError, match=r"hidden_dims\[1\]"):
        Projector(4, (4, 0), 4)
    with pytest.raises(ValueError, match="out_dim"):
        Projector(4, (4,), 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hidden_dim"):
        Predictor(4, -1)
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        Projector(4, (4,), 4)(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        Predictor(4, 2)(torch.randn(3, 4, 1))

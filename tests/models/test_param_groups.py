"""Weight-decay groups: every trainable parameter once, norms and biases never decayed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from covssl.models import EMATarget, Predictor, Projector, param_groups_for_weight_decay, resnet18

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


class SSLModel(nn.Module):
    """Backbone + heads + a frozen EMA target, as a BYOL-style method holds them."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = resnet18(width=0.125)
        self.projector = Projector(64, (32,), 16)
        self.predictor = Predictor(16, 8)
        self.extra = nn.Sequential(nn.LayerNorm(16), nn.GroupNorm(4, 16))
        self.target = EMATarget(self.backbone)


def norm_or_bias_ids(model: nn.Module) -> set[int]:
    ids = set()
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            if isinstance(m, NORMS) or name == "bias":
                ids.add(id(p))
    return ids


def test_every_trainable_parameter_exactly_once() -> None:
    model = SSLModel()
    decay, no_decay = param_groups_for_weight_decay(model, 5e-4)
    ids = [id(p) for p in decay["params"]] + [id(p) for p in no_decay["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids))
    assert set(ids) == trainable
    frozen = {id(p) for p in model.target.parameters()}
    assert frozen and not frozen & set(ids)


def test_no_norm_or_bias_is_decayed() -> None:
    model = SSLModel()
    decay, no_decay = param_groups_for_weight_decay(model, 5e-4)
    special = norm_or_bias_ids(model) - {id(p) for p in model.target.parameters()}
    assert not special & {id(p) for p in decay["params"]}
    assert special <= {id(p) for p in no_decay["params"]}
    assert all(p.ndim >= 2 for p in decay["params"])
    # Conv kernels and linear weights: 20 convs in ResNet-18 (incl. 3 shortcuts) + 2 + 2 linears.
    assert len(decay["params"]) == 20 + 2 + 2
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (5e-4, 0.0)
    assert (decay["name"], no_decay["name"]) == ("decay", "no_decay")


def test_tied_parameters_listed_once() -> None:
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    decay, no_decay = param_groups_for_weight_decay(nn.Sequential(a, b), 0.1)
    assert len(decay["params"]) == 1 and len(no_decay["params"]) == 2


def test_no_weight_decay_hook_is_honoured() -> None:
    class WithToken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
            self.proj = nn.Linear(8, 8)

        def no_weight_decay(self) -> set[str]:
            return {"cls_token"}

    decay, no_decay = param_groups_for_weight_decay(WithToken(), 0.1)
    assert len(decay["params"]) == 1 and decay["params"][0].shape == (8, 8)
    assert any(p.shape == (1, 1, 8) for p in no_decay["params"])


def test_sgd_applies_decay_only_to_the_first_group() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(param_groups_for_weight_decay(model, 0.5), lr=1.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    w, b, gamma, beta = model.parameters()
    torch.testing.assert_close(w.detach(), before[0] * 0.5)  # w <- w - lr * wd * w
    for p, p0 in zip((b, gamma, beta), before[1:]):
        assert torch.equal(p.detach(), p0)


@pytest.mark.parametrize("wd", [-1e-4, float("nan"), "0.1"])
def test_bad_arguments_raise(wd: object) -> None:
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups_for_weight_decay(nn.Linear(2, 2), wd)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model"):
        param_groups_for_weight_decay([nn.Parameter(torch.zeros(2))], 0.1)  # type: ignore[arg-type]

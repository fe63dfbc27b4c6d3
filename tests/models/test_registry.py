"""Registry behaviour, and the backbone contract tested for every registered backbone."""

from __future__ import annotations

import inspect
import sys
import types

import pytest
import torch
from torch import nn

from covssl.models import create_backbone, list_backbones, register_backbone
from covssl.models import registry
from covssl.registry import Registry

BACKBONES = list_backbones()


def small_kwargs(name: str) -> dict[str, float]:
    """The smallest variant a factory offers: width 0.125 when it has a width argument."""
    params = inspect.signature(registry._BACKBONES[name]).parameters
    return {"width": 0.125} if "width" in params else {}


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A copy of the registry, so that test registrations do not leak into other tests."""
    copy = Registry("backbone")
    copy.update(registry._BACKBONES)
    monkeypatch.setattr(registry, "_BACKBONES", copy)
    return copy


def test_builtin_backbones_are_registered() -> None:
    assert {"resnet18", "resnet34", "resnet50", "small_convnet"} <= set(BACKBONES)
    assert BACKBONES == sorted(BACKBONES)


def test_list_backbones_pattern() -> None:
    assert list_backbones("resnet*") == ["resnet18", "resnet34", "resnet50"]
    assert list_backbones("small_*") == ["small_convnet"]
    assert list_backbones("nothing*") == []
    with pytest.raises(ValueError, match="pattern"):
        list_backbones(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", BACKBONES)
def test_forward_gives_finite_features(name: str) -> None:
    torch.manual_seed(0)
    net = create_backbone(name, **small_kwargs(name))
    assert isinstance(net.out_dim, int) and net.out_dim >= 1
    out = net(torch.randn(4, 3, 16, 16))
    assert out.shape == (4, net.out_dim)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # Features must depend on the image, otherwise the backbone is collapsed by construction.
    assert out.std(dim=0).max() > 0


@pytest.mark.parametrize("name", BACKBONES)
def test_backward_gives_finite_grads_for_all_params(name: str) -> None:
    torch.manual_seed(0)
    net = create_backbone(name, **small_kwargs(name))
    out = net(torch.randn(4, 3, 16, 16))
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("name", BACKBONES)
def test_train_and_eval_modes(name: str) -> None:
    torch.manual_seed(0)
    net = create_backbone(name, **small_kwargs(name))
    x = torch.randn(6, 3, 16, 16)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]

    # Train mode: batch statistics, so a sample's features depend on the rest of the batch,
    # and the running statistics move (backbones without BatchNorm, the ViTs, have neither).
    net.train()
    if bns:
        before = [bn.running_mean.clone() for bn in bns]
        full = net(x)
        alone = net(x[:2])
        assert not torch.allclose(full[:2], alone, atol=1e-5)
        assert any(not torch.equal(b, bn.running_mean) for b, bn in zip(before, bns))
    else:
        assert name.startswith("vit")

    # Eval mode: running statistics, so samples are independent and nothing is updated.
    net.eval()
    frozen = [bn.running_mean.clone() for bn in bns]
    with torch.no_grad():
        full = net(x)
        alone = net(x[:2])
    torch.testing.assert_close(full[:2], alone, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(f, bn.running_mean) for f, bn in zip(frozen, bns))


@pytest.mark.parametrize("name", BACKBONES)
def test_bad_images_raise(name: str) -> None:
    net = create_backbone(name, **small_kwargs(name))
    with pytest.raises(ValueError, match="x"):
        net(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="x"):
        net(torch.randn(3, 16, 16))


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError, match="resnet18") as err:
        create_backbone("resnet19")
    assert "small_convnet" in str(err.value) and "resnet19" in str(err.value)
    with pytest.raises(ValueError, match="name"):
        create_backbone(18)  # type: ignore[arg-type]


def test_duplicate_registration_raises(isolated_registry: dict) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("resnet18")

    @register_backbone("tmp_net")
    def tmp_net() -> nn.Module:
        net = nn.Flatten()
        net.out_dim = 1  # type: ignore[assignment]
        return net

    assert "tmp_net" in list_backbones()
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("tmp_net")


def test_register_rejects_bad_names(isolated_registry: dict) -> None:
    with pytest.raises(ValueError, match="timm"):
        register_backbone("timm:resnet18")
    with pytest.raises(ValueError, match="non-empty"):
        register_backbone("")


def test_factory_without_out_dim_is_an_error(isolated_registry: dict) -> None:
    register_backbone("no_out_dim")(lambda: nn.Identity())
    with pytest.raises(ValueError, match="out_dim"):
        create_backbone("no_out_dim")


def test_kwargs_reach_the_factory() -> None:
    net = create_backbone("resnet18", width=0.25, cifar_stem=False)
    assert net.out_dim == 8 * 16
    assert net.conv1.kernel_size == (7, 7)


def test_timm_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(ValueError, match=r"pip install covssl\[timm\]"):
        create_backbone("timm:resnet18")


def test_timm_models_are_built_without_classifier(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict]] = []

    def create_model(model_name: str, **kwargs: object) -> nn.Module:
        calls.append((model_name, kwargs))
        net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        net.num_features = 3  # type: ignore[assignment]
        return net

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    net = create_backbone("timm:vit_tiny_patch16_224", pretrained=False)
    assert calls == [("vit_tiny_patch16_224", {"pretrained": False, "num_classes": 0})]
    assert net.out_dim == 3
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 3)
    with pytest.raises(ValueError, match="num_classes"):
        create_backbone("timm:resnet18", num_classes=10)
    with pytest.raises(ValueError, match="model_name"):
        create_backbone("timm:")

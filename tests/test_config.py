"""Run configuration: layering, shipped configs, round trip, clear errors for bad values."""

from __future__ import annotations

import pytest

from covssl.config import RunConfig, from_yaml, shipped_configs, to_yaml

from covssl.resolve import load_config
from covssl.methods import list_methods


def test_defaults_are_the_offline_demo() -> None:
    config = load_config()
    assert config.data.dataset == "digits"
    assert config.method.name == "vicreg"


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_loads_and_round_trips(name: str) -> None:
    config = load_config(name)
    assert isinstance(config, RunConfig)
    assert from_yaml(to_yaml(config)) == config


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_a_shipped_learning_rate_comes_with_its_optimizer(name: str) -> None:
    """An lr tuned for one optimizer must not survive a method.name=... switch onto another one's."""
    from omegaconf import OmegaConf

    optim = OmegaConf.load(shipped_configs()[name]).get("optim") or {}
    if "lr" in optim:
        assert "optimizer" in optim, f"{name}: sets optim.lr without optim.optimizer"
        for method in list_methods():
            assert load_config(name, [f"method.name={method}"]).optim.optimizer == optim["optimizer"]


def test_every_method_has_a_cifar10_config() -> None:
    assert {f"cifar10/{m}" for m in list_methods()} <= set(shipped_configs())


def test_layers_method_defaults_then_file_then_cli(tmp_path) -> None:
    simsiam = load_config(None, ["method.name=simsiam"])
    assert simsiam.model.predictor_hidden > 0 and simsiam.optim.optimizer == "sgd"  # method layer
    path = tmp_path / "c.yaml"
    path.write_text("method:\n  name: simsiam\noptim:\n  lr: 0.123\n")
    from_file = load_config(path)
    assert from_file.optim.lr == 0.123 and from_file.optim.optimizer == "sgd"  # file beats method
    from_cli = load_config(path, ["optim.lr=0.5"])
    assert from_cli.optim.lr == 0.5  # CLI beats file


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=-1", "optim.lr"),
        ("optim.optimizer=adam", "optim.optimizer"),
        ("train.batch_size=1", "train.batch_size"),
        ("train.precision=fp8", "train.precision"),
        ("train.on_nonfinite=ignore", "train.on_nonfinite"),
        ("optim.momentum=1.5", "optim.momentum"),
        ("model.ema_momentum=2", "model.ema_momentum"),
        ("model.projector_hidden=[0]", "model.projector_hidden"),
        ("method.name=dino", "method.name"),
        ("optim.lerning_rate=0.1", "lerning_rate"),
        ("train.epochs=many", "epochs"),
        ("eval.image_size=0", "eval.image_size"),
    ],
)
def test_bad_values_are_named(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_missing_config_file_lists_the_shipped_ones() -> None:
    with pytest.raises(FileNotFoundError, match="cifar10/vicreg"):
        load_config("no/such.yaml")

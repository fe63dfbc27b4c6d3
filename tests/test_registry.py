"""The one registry type, and that every registry of the package is one."""

from __future__ import annotations

import pytest

from covssl.registry import Registry


def test_registering_a_name_twice_is_an_error() -> None:
    things = Registry[int]("thing")
    things.register("a", 1)
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        things.register("a", 2)
    assert things.lookup("a") == 1
    with pytest.raises(ValueError, match="non-empty string"):
        things.register("", 3)


def test_an_unknown_name_lists_the_choices_and_names_filter_by_pattern() -> None:
    things = Registry[int]("thing")
    for i, name in enumerate(["resnet18", "resnet50", "small_convnet"]):
        things.register(name, i)
    with pytest.raises(ValueError, match="unknown thing 'vit'; choose one of: resnet18, resnet50, small_convnet"):
        things.lookup("vit")
    assert things.names("resnet*") == ["resnet18", "resnet50"] and things.names() == sorted(things)


def test_the_decorator_form_returns_the_factory_unchanged() -> None:
    factories = Registry("factory")

    @factories.decorator("double")
    def double(x: int) -> int:
        return 2 * x

    assert factories.lookup("double") is double and double(2) == 4


def _registries() -> dict[str, object]:
    from covssl.augment import presets as augment_presets
    from covssl.data.registry import DATASETS
    from covssl.experiments.registry import EXPERIMENTS
    from covssl.methods import METHODS
    from covssl.models import registry as backbones
    from covssl.objectives.terms import TERMS

    return {"terms": TERMS, "methods": METHODS, "experiments": EXPERIMENTS, "backbones": backbones._BACKBONES,
            "datasets": DATASETS, "augment presets": augment_presets._RECIPES}


@pytest.mark.parametrize("name", list(_registries()))
def test_every_registry_of_the_package_is_a_registry(name: str) -> None:
    registry = _registries()[name]
    assert isinstance(registry, Registry) and len(registry) > 0
    first = registry.names()[0]
    with pytest.raises(ValueError, match="already registered"):
        registry.register(first, registry[first])

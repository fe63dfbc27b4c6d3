"""Backbones by name: ``register_backbone``, ``create_backbone``, ``list_backbones``.

The registry is filled by the explicit imports in :mod:`covssl.models` (never a star import),
so ``create_backbone("resnet18")`` works as soon as ``covssl.models`` is imported. Names of the
form ``"timm:<model_name>"`` are not registered: they build a timm model with its classifier
removed (``num_classes=0``) when the optional ``timm`` extra is installed.

Every backbone maps images (batch, 3, H, W) to features (batch, out_dim) and exposes
``out_dim: int``, so a projector can be sized without a dummy forward pass.
"""

from __future__ import annotations

from covssl.registry import Registry

from typing import Any, Callable, TypeVar

from torch import nn

TIMM_PREFIX = "timm:"

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)

_BACKBONES: Registry[Factory] = Registry("backbone")


def register_backbone(name: str) -> Callable[[F], F]:
    """Decorator that registers a backbone factory under ``name``.

    Args:
        name: non-empty registry key, without the reserved ``"timm:"`` prefix.

    Returns:
        A decorator that records the factory and returns it unchanged.

    Raises:
        ValueError: if ``name`` is empty, uses the ``"timm:"`` prefix, or is already registered.

    Examples:
        >>> @register_backbone("my_net")  # doctest: +SKIP
        ... def my_net(width: float = 1.0) -> nn.Module: ...
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")
    if name.startswith(TIMM_PREFIX):
        raise ValueError(f"name: the prefix {TIMM_PREFIX!r} is reserved for timm models, got {name!r}")
    if name in _BACKBONES:
        raise ValueError(f"name: backbone {name!r} is already registered (by {_BACKBONES[name].__module__})")

    def decorator(factory: F) -> F:
        # Checked again here: two modules may race to the same name between call and decoration.
        if name in _BACKBONES:
            raise ValueError(f"name: backbone {name!r} is already registered")
        return _BACKBONES.register(name, factory)

    return decorator


def list_backbones(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered backbones, optionally filtered by an fnmatch pattern.

    Args:
        pattern: shell-style pattern such as ``"resnet*"``; None lists every backbone.

    Returns:
        Sorted list of names (timm models are not listed: timm has its own ``list_models``).

    Examples:
        >>> list_backbones("resnet*")
        ['resnet18', 'resnet34', 'resnet50']
    """
    if pattern is not None and not isinstance(pattern, str):
        raise ValueError(f"pattern: expected a string or None, got {type(pattern).__name__}")
    return _BACKBONES.names(pattern)


def create_backbone(name: str, **kwargs: Any) -> nn.Module:
    """Build a backbone by name.

    Args:
        name: a registered name (see :func:`list_backbones`) or ``"timm:<model_name>"``.
        **kwargs: passed to the factory (e.g. ``width=0.25, cifar_stem=True`` for ResNets,
            ``pretrained=True`` for timm models).

    Returns:
        An ``nn.Module`` mapping (batch, 3, H, W) images to (batch, out_dim) features, with an
        ``out_dim: int`` attribute.

    Raises:
        ValueError: for an unknown name (the message lists the choices), or a timm name when
            timm is not installed.

    Examples:
        >>> import torch
        >>> net = create_backbone("resnet18", width=0.125)
        >>> net(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 64])
    """
    if not isinstance(name, str):
        raise ValueError(f"name: expected a string, got {type(name).__name__}")
    if name.startswith(TIMM_PREFIX):
        return _create_timm(name[len(TIMM_PREFIX) :], **kwargs)
    if name not in _BACKBONES:
        raise ValueError(
            f"name: unknown backbone {name!r}; expected one of {list_backbones()} "
            f"or '{TIMM_PREFIX}<model_name>'"
        )
    model = _BACKBONES[name](**kwargs)
    if not isinstance(getattr(model, "out_dim", None), int):
        # A registered factory that forgets out_dim breaks projector sizing later; fail here.
        raise ValueError(f"name: backbone {name!r} must set an integer attribute 'out_dim'")
    return model


def _create_timm(model_name: str, **kwargs: Any) -> nn.Module:
    """A timm model without classifier (``num_classes=0``: forward returns pooled features)."""
    if not model_name:
        raise ValueError(f"name: expected '{TIMM_PREFIX}<model_name>', got '{TIMM_PREFIX}'")
    try:
        import timm  # optional dependency
    except ImportError as err:
        raise ValueError(
            f"name: '{TIMM_PREFIX}{model_name}' needs the optional timm package, which is not "
            "installed; run `pip install covssl[timm]`"
        ) from err
    if "num_classes" in kwargs and kwargs["num_classes"] != 0:
        raise ValueError(f"num_classes: a backbone has no classifier, expected 0, got {kwargs['num_classes']!r}")
    kwargs["num_classes"] = 0
    model = timm.create_model(model_name, **kwargs)
    model.out_dim = int(model.num_features)
    return model

"""A run configuration resolved from its layers, with the method's defaults: the layer above the methods.

Layers, later ones win: the dataclass defaults (:mod:`covssl.config`) -> the method's defaults
(its registry entry, :mod:`covssl.methods`) -> a YAML file -> ``key=value`` overrides from the
command line. OmegaConf checks types and rejects unknown keys at every layer;
:func:`covssl.config.validate` then checks values, and the method and its objective are checked
here, when the configuration is loaded, not an hour into a run.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from covssl.config import RunConfig, merge_layer, shipped_configs, validate
from covssl.data import list_datasets
from covssl.methods import method_defaults, objective_spec
from covssl.objectives.objective import check_spec


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Resolve a run configuration from the layers described in the module docstring.

    Args:
        path: a YAML file, or the name of a shipped config ("cifar10/vicreg"); None for defaults.
        overrides: ``section.key=value`` strings, e.g. ["optim.lr=0.1", "train.epochs=5"].

    Examples:
        >>> load_config(None, ["method.name=simclr"]).optim.optimizer
        'lars'
    """
    config: DictConfig = OmegaConf.structured(RunConfig)
    file_layer = None
    if path is not None:
        shipped = shipped_configs()
        file_path = shipped.get(str(path), Path(path))
        if not file_path.is_file():
            raise FileNotFoundError(f"config: no such file {str(path)!r} (shipped configs: {', '.join(shipped)})")
        file_layer = OmegaConf.load(file_path)
    cli_layer = OmegaConf.from_dotlist(list(overrides or []))
    # the method (and dataset) decide their defaults before the file and the CLI override them
    probe = merge_layer(merge_layer(config, file_layer or {}, f"config {path}"), cli_layer, "command-line override")
    if probe.data.dataset not in list_datasets():
        raise ValueError(f"data.dataset: expected one of {list_datasets()}, got {probe.data.dataset!r}")
    config = merge_layer(config, method_defaults(probe.method.name, probe.data.dataset), "method defaults")
    if file_layer is not None:
        config = merge_layer(config, file_layer, f"config {path}")
    config = merge_layer(config, cli_layer, "command-line override")
    resolved: RunConfig = OmegaConf.to_object(config)  # type: ignore[assignment]
    validate(resolved)
    check_objective(resolved)
    return resolved


def check_objective(config: RunConfig) -> None:
    """The objective spec parses and a predictor exists where the objective needs one.

    The spec is checked, not built: the run builds its objective once, with the model
    (:func:`covssl.methods.model.build_model`).
    """
    spec = objective_spec(config)
    try:
        definitions = check_spec(spec)
    except ValueError as error:
        raise ValueError(f"method.objective: {error}") from None
    if any(d.kind == "distill" for d in definitions) and config.model.ema_momentum is None:
        raise ValueError(
            f"model.ema_momentum: the objective {spec!r} compares the views with an EMA teacher; "
            "expected a momentum such as 0.996, got None"
        )
    if any(d.kind == "predict" for d in definitions) and config.model.predictor_hidden <= 0:
        raise ValueError(
            f"model.predictor_hidden: the objective {spec!r} compares predictions with targets; "
            f"expected a width > 0, got {config.model.predictor_hidden}"
        )

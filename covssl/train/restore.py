"""Rebuild a trained model from a run folder or a checkpoint file (for eval, export, diagnose)."""

from __future__ import annotations

from pathlib import Path

from covssl.config import RunConfig, from_yaml
from covssl.methods.model import SSLModel, build_model
from covssl.train.checkpoint import load_checkpoint_file, load_latest


def load_run(path: str | Path) -> tuple[RunConfig, SSLModel, int]:
    """(config, model in eval mode, step) from a run folder or one of its checkpoint files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"run: no such run folder or checkpoint {path}")
    run_dir = path if path.is_dir() else path.parent
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"run: {run_dir} has no config.yaml; is it a covssl run folder?")
    config = from_yaml(config_file.read_text())
    if path.is_dir():
        loaded = load_latest(run_dir)
        if loaded is None:
            raise FileNotFoundError(f"run: {run_dir} holds no loadable checkpoint")
        state = loaded[0]
    else:
        state = load_checkpoint_file(path)
    model = build_model(config)
    model.load_state_dict(state["model"])
    return config, model.eval(), int(state["step"])

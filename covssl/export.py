"""Export a trained backbone as safetensors + a small JSON, loadable without the training code.

    backbone.safetensors   the backbone's state dict (tensors only: cannot execute code)
    backbone.json          {"backbone": "resnet18", "kwargs": {"width": 0.25, "cifar_stem": true},
                            "out_dim": 128, "covssl_version": "..."}

``load_backbone(folder)`` needs only :mod:`covssl.models` (and timm for timm backbones).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

import covssl
from covssl.models import create_backbone


def export_backbone(
    backbone: nn.Module, name: str, kwargs: dict[str, Any], out_dir: str | Path, overwrite: bool = False
) -> Path:
    """Write backbone.safetensors and backbone.json into ``out_dir`` (created if needed).

    Raises:
        ValueError: ``out_dir`` is a file, or already holds an exported backbone and ``overwrite``
            is False.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"export: {out} exists and is not a folder; name a folder for backbone.safetensors + backbone.json")
    if not overwrite and any((out / f).exists() for f in ("backbone.safetensors", "backbone.json")):
        raise ValueError(f"export: {out} already holds an exported backbone; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    save_file(tensors, str(out / "backbone.safetensors"))
    meta = {"backbone": name, "kwargs": kwargs, "out_dim": int(backbone.out_dim), "covssl_version": covssl.__version__}
    (out / "backbone.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


MAX_META_BYTES = 1 << 16  # backbone.json is a few hundred bytes
MAX_WIDTH = 16.0  # channel multiplier; 16x a ResNet-50 is already far beyond any exported model


def _read_meta(path: Path) -> dict[str, Any]:
    """backbone.json, checked: small, UTF-8 JSON, an object with a string backbone and a kwargs object."""
    if path.stat().st_size > MAX_META_BYTES:
        raise ValueError(f"exported backbone {path}: {path.stat().st_size} bytes, not a backbone.json; export the run again")
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"exported backbone {path}: not valid JSON ({error}); export the run again") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("backbone"), str) or not isinstance(meta.get("kwargs"), dict):
        got = sorted(meta)[:6] if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"exported backbone {path}: expected an object with 'backbone' (a name) and 'kwargs' "
                         f"(an object), got {got}; export the run again")
    return meta


def load_backbone(folder: str | Path) -> nn.Module:
    """Rebuild an exported backbone (eval mode) from its folder."""
    folder = Path(folder)
    meta_path, weights_path = folder / "backbone.json", folder / "backbone.safetensors"
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"exported backbone: missing {path}")
    meta = _read_meta(meta_path)
    try:
        weights = load_file(str(weights_path))
    except Exception as error:  # not a safetensors file, truncated header
        raise ValueError(f"exported backbone {weights_path}: cannot be read ({type(error).__name__}: {error}); "
                         "export the run again") from None
    width = meta["kwargs"].get("width", 1.0)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= MAX_WIDTH:
        raise ValueError(f"exported backbone {meta_path}: kwargs.width {width!r} is not a width in (0, {MAX_WIDTH}]; "
                         "export the run again")
    try:
        backbone = create_backbone(meta["backbone"], **meta["kwargs"])
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"exported backbone {meta_path}: cannot build {meta['backbone']!r} "
                         f"({type(error).__name__}: {error}); export the run again") from None
    expected = backbone.state_dict()
    bad = sorted(set(expected) ^ set(weights)) or [k for k in expected if tuple(expected[k].shape) != tuple(weights[k].shape)]
    if bad:
        raise ValueError(f"exported backbone {meta_path}: describes another model than {weights_path.name} "
                         f"(keys or shapes differ: {bad[:5]}); export the run again")
    backbone.load_state_dict(weights)
    return backbone.eval()

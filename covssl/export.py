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


def export_backbone(backbone: nn.Module, name: str, kwargs: dict[str, Any], out_dir: str | Path) -> Path:
    """Write backbone.safetensors and backbone.json into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    save_file(tensors, str(out / "backbone.safetensors"))
    meta = {"backbone": name, "kwargs": kwargs, "out_dim": int(backbone.out_dim), "covssl_version": covssl.__version__}
    (out / "backbone.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_backbone(folder: str | Path) -> nn.Module:
    """Rebuild an exported backbone (eval mode) from its folder."""
    folder = Path(folder)
    meta_path, weights_path = folder / "backbone.json", folder / "backbone.safetensors"
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"exported backbone: missing {path}")
    meta = json.loads(meta_path.read_text())
    backbone = create_backbone(meta["backbone"], **meta["kwargs"])
    backbone.load_state_dict(load_file(str(weights_path)))
    return backbone.eval()

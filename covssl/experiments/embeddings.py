"""Embeddings to diagnose: from a file, or encoded from a trained run; and the collapse verdict.

Two sources feed ``covssl diagnose`` (and the ``taylor`` experiment's ``--run``):

* an embeddings file: ``.pt``/``.pth`` (read with ``torch.load(weights_only=True)``, which runs
  no pickled code) holding a (N, d) tensor or a dict with "z1" (and optionally "z2", the second
  view's embeddings), or ``.npy`` (``numpy.load(allow_pickle=False)``) holding a (N, d) array;
* a run folder or one of its ``checkpoint-<step>.pt`` files, whose model encodes the test split
  of the run's dataset twice:

  - projector embeddings z of two augmented views (the run's own augmentations, seeded), with
    the model in *train* mode and BatchNorm's running statistics frozen: BatchNorm normalizes
    each batch of ``train.batch_size`` images with that batch's statistics, exactly as the loss
    saw the embeddings during training (eval mode would use running averages that a collapsing
    run has not caught up with);
  - backbone features of the unaugmented images in *eval* mode: what kNN and the linear probe
    evaluate.

The verdict reads the two complete-collapse indicators that do not depend on the scale of z,
SimSiam's std of z/||z|| (healthy about 1/sqrt(d)) and Roy & Vetterli's effective rank:

    collapsed            sqrt(d) * std_of_normalized < 0.1   or  effective_rank < 1.5
    partially collapsed  sqrt(d) * std_of_normalized < 0.5   or  effective_rank < 0.1 * min(B - 1, d)
    healthy              otherwise

0.1 is the threshold of the ``simsiam-collapse`` experiment (std below a tenth of its healthy
value); an effective rank below 1.5 means one direction carries the variance; below a tenth of
the available directions is dimensional collapse. Backbone features after ReLU and pooling are
non-negative, so their large common mean lowers std_of_normalized even when they are healthy:
the verdict is meant for the projector embeddings, the quantity the objective regularizes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from covssl._checks import check_embeddings

_CHECKPOINT = re.compile(r"^checkpoint-\d{8}\.pt$")
EMBEDDING_SUFFIXES = (".pt", ".pth", ".npy")


def is_run(path: Path) -> bool:
    """True for a folder (a run) or a ``checkpoint-<8 digits>.pt`` file."""
    return path.is_dir() or bool(_CHECKPOINT.match(path.name))


def _as_embeddings(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise ValueError(f"{name}: expected a numeric array of shape (N, d), got dtype {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor or array of shape (N, d), got {type(value).__name__}")
    if not value.is_floating_point():
        value = value.double()  # integer codes are fine; diagnostics need floats
    return check_embeddings(value.detach().cpu(), name)


def load_embeddings_file(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(z1, z2 or None) from a .pt/.pth or .npy file (see the module docstring).

    Args:
        path: the file; integer arrays are converted to float64.

    Returns:
        z1 of shape (N, d) and z2 of the same shape, or None when the file holds one set.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unknown suffix, unreadable file, unexpected content or shape (the message
            names what was expected and what was found).

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "z.npy"
        >>> np.save(path, np.ones((4, 3)))
        >>> z1, z2 = load_embeddings_file(path)
        >>> tuple(z1.shape), z2 is None
        ((4, 3), True)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings: no such file {path}")
    suffix = path.suffix.lower()
    if suffix not in EMBEDDING_SUFFIXES:
        expected = ", ".join(EMBEDDING_SUFFIXES)
        raise ValueError(f"embeddings: expected a {expected} file or a run folder, got {path.name!r}")
    try:
        if suffix == ".npy":
            loaded: Any = np.load(path, allow_pickle=False)
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated file, pickled objects, not an array at all
        raise ValueError(f"embeddings: cannot read {path} ({type(error).__name__}: {error})") from None
    if isinstance(loaded, dict):
        if "z1" not in loaded:
            keys = sorted(map(str, loaded))[:8]
            raise ValueError(f"embeddings: expected a dict with key 'z1' (and optionally 'z2'), got keys {keys}")
        z1 = _as_embeddings(loaded["z1"], "z1")
        z2 = _as_embeddings(loaded["z2"], "z2") if loaded.get("z2") is not None else None
        if z2 is not None and z2.shape != z1.shape:
            raise ValueError(f"z2: expected the same shape as z1 {tuple(z1.shape)}, got {tuple(z2.shape)}")
        return z1, z2
    return _as_embeddings(loaded, "embeddings"), None


@dataclass
class RunEmbeddings:
    """What a trained run's model makes of its test split (see the module docstring)."""

    run_dir: Path
    step: int
    z1: torch.Tensor  # (N, d) projector embeddings of view 1, train-mode BN
    z2: torch.Tensor  # (N, d) projector embeddings of view 2
    features: torch.Tensor  # (N, out_dim) backbone features, eval mode, unaugmented


def run_embeddings(path: str | Path, max_images: int | None = None, seed: int = 0) -> RunEmbeddings:
    """Encode the test split of a run (folder or checkpoint file) with its trained model.

    Args:
        path: the run folder (its newest valid checkpoint) or one checkpoint file.
        max_images: encode at most this many test images (the first ones), None for all.
        seed: seed of the augmentations of the two views.
    """
    from covssl.augment import TwoViewAugment
    from covssl.evaluate import encode
    from covssl.experiments._training import frozen_batchnorm
    from covssl.train.data import load_splits
    from covssl.train.evaluation import eval_transform
    from covssl.train.restore import load_run

    path = Path(path)
    config, model, step = load_run(path)
    images = load_splits(config.data, config.train.seed).test.images  # (N, H, W, 3) uint8
    if max_images is not None:
        images = images[:max_images]
    if len(images) < 2:
        raise ValueError(f"run: the test split has {len(images)} image(s); the diagnostics need at least 2")
    cpu = torch.device("cpu")
    features = encode(model.backbone, images, eval_transform(config), cpu, config.eval.batch_size)  # (N, F)
    augment, generator = TwoViewAugment(config.augment), torch.Generator().manual_seed(seed)
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (N, 3, H, W)
    views: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
    # near-equal chunks of about train.batch_size: BatchNorm never sees a batch of one
    chunks = math.ceil(len(batch) / min(config.train.batch_size, len(batch)))
    with torch.no_grad(), frozen_batchnorm(model):
        for part in torch.tensor_split(batch, chunks):
            for view, out in zip(augment(part, generator=generator), views):
                out.append(model.projector(model.backbone(view)))  # (n, d)
    run_dir = path if path.is_dir() else path.parent
    return RunEmbeddings(run_dir, step, torch.cat(views[0]), torch.cat(views[1]), features)

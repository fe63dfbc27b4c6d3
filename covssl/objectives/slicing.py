"""Random unit directions for sliced regularizers (VISReg, SIGReg), drawn the same on every rank.

A sliced regularizer compares 1-D projections z @ u_k of the embeddings with a target law. Its
directions are drawn from a generator seeded by the step (:class:`SlicedRegularizer`), so every
process of a distributed run draws the same ones and a resumed run continues their sequence.
"""

from __future__ import annotations

import torch
from torch import nn

_UNIT_TOL = 1e-4  # how far from 1 a given direction's norm may be


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def _check_directions(directions: object, dim: int) -> torch.Tensor:
    if not isinstance(directions, torch.Tensor):
        got = type(directions).__name__
        raise ValueError(f"directions: expected a torch.Tensor of shape (slices, {dim}), got {got}")
    if directions.ndim != 2 or directions.shape[1] != dim or directions.shape[0] < 1:
        raise ValueError(f"directions: expected shape (slices >= 1, {dim}), got {tuple(directions.shape)}")
    if not directions.is_floating_point():
        raise ValueError(f"directions: expected a floating-point dtype, got {directions.dtype}")
    if not bool(torch.isfinite(directions).all()):
        raise ValueError("directions: expected finite values, got NaN/inf entries")
    norms = torch.linalg.vector_norm(directions.double(), dim=1)  # (K,)
    worst = float((norms - 1.0).abs().max())
    if worst > _UNIT_TOL:
        raise ValueError(f"directions: expected rows of norm 1 (within {_UNIT_TOL}), got a norm off by {worst:.3g}")
    return directions


def random_directions(
    num_slices: int,
    dim: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """K = num_slices directions uniform on the unit sphere of R^dim, shape (K, dim).

    Gaussian rows drawn (float32) on the generator's device, moved to ``device`` and ``dtype``,
    divided by their norms. ``generator=None``: a fresh generator seeded 0 (always the same).

    Examples:
        >>> u = random_directions(3, 5)
        >>> torch.allclose(u.norm(dim=1), torch.ones(3))
        True
        >>> torch.equal(u, random_directions(3, 5, torch.Generator().manual_seed(0)))
        True
    """
    num_slices = _check_count(num_slices, "num_slices")
    dim = _check_count(dim, "dim")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    gaussian = torch.randn(num_slices, dim, generator=generator, device=generator.device, dtype=torch.float32)
    gaussian = gaussian.to(device=device, dtype=dtype)
    return gaussian / torch.linalg.vector_norm(gaussian, dim=1, keepdim=True)  # (K, d)


class SlicedRegularizer(nn.Module):
    """The step-seeded random directions a sliced regularizer (VISReg, SIGReg) shares across ranks.

    Step t's directions are ``random_directions(num_slices, dim, Generator().manual_seed(seed +
    t))`` (:meth:`directions`). In training mode :meth:`advance` moves to the next step (call it
    once per optimizer step); eval mode leaves it alone, so validation does not change what
    training draws. Every rank makes the same calls, so every rank draws the same directions;
    ``step`` is a buffer in ``state_dict``, so a resumed run draws what the uninterrupted run
    would have drawn.

    Args:
        dim: embedding dimension d.
        num_slices: K, directions per step, >= 1.
        seed: the directions of step t come from the seed ``seed + t``, an int >= 0.
    """

    step: torch.Tensor

    def __init__(self, dim: int, num_slices: int, seed: int = 0) -> None:
        super().__init__()
        self.dim = _check_count(dim, "dim")
        self.num_slices = _check_count(num_slices, "num_slices")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
        self.seed = seed
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self._step = 0  # host copy of ``step``: reading the buffer each call would wait for the device

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._step = int(self.step)

    def reset_state(self) -> None:
        """Start the sequence of directions again: step = 0."""
        self._step = 0
        self.step.zero_()

    def directions(
        self,
        step: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The (num_slices, dim) unit directions of ``step`` (default: those of the next call)."""
        step = self._step if step is None else step
        generator = torch.Generator().manual_seed(self.seed + step)
        return random_directions(self.num_slices, self.dim, generator, device=device, dtype=dtype)

    def advance(self) -> None:
        """In training mode, move to the next step's directions."""
        if self.training:
            self._step += 1
            self.step.fill_(self._step)

"""VISReg: a variance (scale) term, a centring term and a sliced-Wasserstein (shape) term.

[0] Wu, Balestriero, Levine, 2026, "VISReg: Variance-Invariance-Sketching Regularization for
    JEPA training", https://arxiv.org/abs/2606.02572

VISReg keeps VICReg's per-dimension scale control but swaps the covariance penalty for a
sketch of the whole distribution: after the scale is normalized out (with a stop-gradient),
random 1-D projections of the batch are compared with the quantiles of N(0, 1), which is the
closed-form squared 2-Wasserstein distance of each slice to a standard normal. For z (N, d)
with column means m_j and biased standard deviations s_j (divisor N):

    centre = (1/d) sum_j m_j^2
    scale  = (1/d) sum_j (1 - s_j)^2
    zs     = (z - m) / (sg(s) + 1e-4)                      sg = stop-gradient
    p_k    = sort_n(zs_n . u_k)                            K unit directions u_k, ascending
    shape  = (1/(N K)) sum_{n,k} (p_k,n - Phi^-1(n / (N + 1)))^2,   n = 1..N
    loss   = scale_weight * scale + shape_weight * shape + centre_weight * centre

Phi^-1 is the standard normal quantile (``torch.special.ndtri``). A standard Gaussian batch
gives about 0 for all three; a collapsed batch (constant rows c) gives scale = 1,
centre = mean_j c_j^2 and shape = mean_n Phi^-1(n / (N + 1))^2 (about 1), all with gradients
that do not vanish. The standard deviations are norms of the centred columns over sqrt(N),
whose gradient is taken as 0 for an exactly constant column (no NaN).

Directions: pass ``directions`` (K, d), or :func:`visreg` draws K = num_slices normalized
Gaussian rows from ``generator``. :class:`VISRegRegularizer` draws step t's from the seed
``seed + t`` and keeps t in ``state_dict``: every rank draws the same directions at the same
step, and a resumed run continues the same sequence.

Distributed training: m, s and the per-slice sorts use whatever batch they are given; pass
the globally gathered batch, with the same directions on every rank, to match a
single-process run on it. ([0] also allows local batches with per-device directions, which
multiplies the slices by the world size; that is not what this scope computes.)
Scope (``TermDef.scope``, see :mod:`covssl.distributed`): ``visreg`` is global: m, s and the
sorted projections with their N quantiles are statistics of the gathered batch, N global.
"""

from __future__ import annotations

import torch

from covssl._checks import check_embeddings, check_non_negative
from covssl.linalg import at_least_float32
from covssl.objectives.slicing import SlicedRegularizer, _check_count, _check_directions, random_directions

_STD_EPS = 1e-4  # added to the detached standard deviation, as in [0]


def _parts(x: torch.Tensor, u: torch.Tensor) -> dict[str, torch.Tensor]:
    """The unweighted scale, shape and centre terms of x (B, d) for unit directions u (K, d)."""
    batch = x.shape[0]
    mean = x.mean(dim=0)  # (d,)
    centred = x - mean  # (B, d)
    # std as a column norm: its gradient is 0 (not 0/0) for an exactly constant column
    std = torch.linalg.vector_norm(centred, dim=0) / batch**0.5  # (d,) biased
    standardized = centred / (std.detach() + _STD_EPS)  # (B, d)
    projections = standardized @ u.T  # (B, d) @ (d, K) -> (B, K): each row (d,) -> (K,)
    ordered = torch.sort(projections, dim=0).values  # (B, K) ascending within each slice
    levels = torch.arange(1, batch + 1, device=x.device, dtype=torch.float64) / (batch + 1)
    quantiles = torch.special.ndtri(levels).to(x.dtype)  # (B,) Phi^-1(n / (N + 1)), float64 first
    return {
        "scale": (1.0 - std).square().mean(),
        "shape": (ordered - quantiles[:, None]).square().mean(),
        "centre": mean.square().mean(),
    }


def _weighted(
    parts: dict[str, torch.Tensor], scale_weight: float, shape_weight: float, centre_weight: float
) -> torch.Tensor:
    return scale_weight * parts["scale"] + shape_weight * parts["shape"] + centre_weight * parts["centre"]


def visreg(
    z: torch.Tensor,
    directions: torch.Tensor | None = None,
    num_slices: int = 4096,
    scale_weight: float = 1.0,
    shape_weight: float = 1.0,
    centre_weight: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """VISReg's regularizer of one batch: scale + shape (sliced W2 to N(0, I)) + centre.

    centre = mean_j m_j^2,  scale = mean_j (1 - s_j)^2     (m, s: column mean, biased std)
    shape  = mean_{n,k} (sort_n((z - m) / (sg(s) + 1e-4) @ u_k) - Phi^-1(n / (N + 1)))^2
    loss   = scale_weight * scale + shape_weight * shape + centre_weight * centre

    Args:
        z: embeddings, shape (batch, dim), batch >= 2.
        directions: the slices u_k as rows of unit norm, shape (slices, dim); when given,
            ``num_slices`` and ``generator`` are not used.
        num_slices: K, how many random directions to draw when ``directions`` is None, >= 1
            (paper: 4096).
        scale_weight: weight of the scale term, >= 0 (paper: 1).
        shape_weight: weight of the shape term, >= 0 (paper: 1; more for long-tailed data).
        centre_weight: weight of the centre term, >= 0 (paper: 1).
        generator: source of the random directions; None: a fresh generator seeded 0, so
            the same call always gives the same value. See :func:`random_directions`.

    Returns:
        Dict with "loss" and the unweighted "scale", "shape" and "centre" terms, scalar
        tensors in the dtype of z promoted to at least float32.

    Examples:
        >>> z = torch.randn(512, 8, generator=torch.Generator().manual_seed(0))
        >>> out = visreg(z, num_slices=256)
        >>> sorted(out)
        ['centre', 'loss', 'scale', 'shape']
        >>> out["loss"].item() < 0.05  # a standard Gaussian batch
        True
        >>> collapsed = visreg(torch.full((512, 8), 0.5), num_slices=256)
        >>> collapsed["scale"].item(), collapsed["centre"].item()
        (1.0, 0.25)
    """
    check_embeddings(z, "z")
    num_slices = _check_count(num_slices, "num_slices")
    scale_weight = check_non_negative(scale_weight, "scale_weight")
    shape_weight = check_non_negative(shape_weight, "shape_weight")
    centre_weight = check_non_negative(centre_weight, "centre_weight")
    dim = z.shape[1]
    if directions is not None:
        _check_directions(directions, dim)
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    with torch.autocast(device_type=z.device.type, enabled=False):
        x = at_least_float32(z)
        if directions is None:
            u = random_directions(num_slices, dim, generator, device=x.device, dtype=x.dtype)  # (K, d)
        else:
            u = directions.to(device=x.device, dtype=x.dtype)  # (K, d)
        parts = _parts(x, u)
    return {"loss": _weighted(parts, scale_weight, shape_weight, centre_weight), **parts}


class VISRegRegularizer(SlicedRegularizer):
    """:func:`visreg` with directions that change every step and are the same on every rank.

    forward(z1, z2=None) = mean over the given views v of visreg(z_v, directions)["loss"]

    Step t's directions, ``random_directions(num_slices, dim, Generator().manual_seed(seed +
    t))`` (:meth:`directions`), are drawn once per call and shared by both views. In training
    mode each call advances ``step`` by one (call it once per optimizer step); eval mode leaves
    it alone, so validation does not change what training draws. Every rank makes the same
    calls, so every rank draws the same directions; ``step`` is a buffer in ``state_dict``, so
    a resumed run draws what the uninterrupted run would have drawn.

    Args:
        dim: embedding dimension d.
        num_slices: K, directions per step, >= 1 (paper: 4096).
        seed: the directions of step t come from the seed ``seed + t``, an int >= 0.
        scale_weight: weight of the scale term, >= 0.
        shape_weight: weight of the shape term, >= 0.
        centre_weight: weight of the centre term, >= 0.

    Examples:
        >>> reg = VISRegRegularizer(dim=8, num_slices=64)
        >>> z1, z2 = torch.randn(32, 8), torch.randn(32, 8)
        >>> reg(z1, z2).shape
        torch.Size([])
        >>> int(reg.step)
        1
    """

    def __init__(
        self,
        dim: int,
        num_slices: int = 4096,
        seed: int = 0,
        scale_weight: float = 1.0,
        shape_weight: float = 1.0,
        centre_weight: float = 1.0,
    ) -> None:
        super().__init__(dim, num_slices, seed)
        self.weights = {
            "scale_weight": check_non_negative(scale_weight, "scale_weight"),
            "shape_weight": check_non_negative(shape_weight, "shape_weight"),
            "centre_weight": check_non_negative(centre_weight, "centre_weight"),
        }

    def forward(self, z1: torch.Tensor, z2: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over the given views of visreg(z_v, u)["loss"], the same directions u for all.

        Args:
            z1: embeddings of the first view, shape (batch, dim), batch >= 2.
            z2: embeddings of the second view, shape (batch, dim), or None for one view.

        Returns:
            Scalar tensor, in the dtype of z promoted to at least float32.
        """
        views = [z1] if z2 is None else [z1, z2]
        for name, z in zip(("z1", "z2"), views):
            check_embeddings(z, name)
            if z.shape[1] != self.dim:
                got = tuple(z.shape)
                raise ValueError(f"{name}: expected {self.dim} columns (the regularizer's dim), got shape {got}")
        drawn: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}  # one draw, cast per dtype
        total = []
        with torch.autocast(device_type=z1.device.type, enabled=False):
            for z in views:
                x = at_least_float32(z)
                if (x.device, x.dtype) not in drawn:
                    drawn[x.device, x.dtype] = self.directions(device=x.device, dtype=x.dtype)  # (K, d)
                total.append(_weighted(_parts(x, drawn[x.device, x.dtype]), **self.weights))
        self.advance()
        return sum(total) / len(total)  # type: ignore[return-value]

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={v}" for k, v in self.weights.items())
        return f"dim={self.dim}, num_slices={self.num_slices}, seed={self.seed}, {weights}"

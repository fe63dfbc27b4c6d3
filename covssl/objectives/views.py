"""Which views each term sees when an objective compares more than two (multi-crop).

A run with ``G`` global and ``L`` local views hands the objective V = G + L embeddings, the
global ones first. Each term's ``views`` choice (spec grammar: ``name[views]``) says how its
function is applied; every choice averages over the calls it makes (``branch`` terms whose
paper sums over the views sum instead):

    align    pairs           mean_{i<j} f(z_i, z_j)                   (default)
             to_global       mean_{a, g global, a != g} f(z_a, z_g)   (DINO / SimDINO)
             to_global_mean  mean_v f(z_v, mean_g z_g)                (LeJEPA, EMP-SSL)
    predict  to_global       mean_{a, g global, a != g} f(p_a, z_g)   (SimSiam / BYOL: predictions
                                                                       chase the global targets)
    branch   all | global    mean (or sum) over those views of f(z_v)
    pair     pairs | global  mean over the pairs of those views of f(z_i, z_j)
    set      all | global    f([z_v for those views])                 (MMCR's centroids)
    distill  all             f([z_v], [t_g]): every student view and the EMA teacher's global
                             views t_g (SimDINO)
    stateful global          module(z_1, z_2), the first two (global) views (default)
             all             module(z_1, ..., z_V), for modules that take any number (SIGReg)

With two views every default is exactly the two-view objective: f(z1, z2) for an alignment or
pair term, (f(z1) + f(z2)) / 2 (or the sum) for a regularizer, (f(p1, z2) + f(p2, z1)) / 2 for
a predictor term.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from covssl.objectives.terms import TermDef

DEFAULT_VIEWS = {
    "align": "pairs", "predict": "to_global", "branch": "all", "pair": "pairs", "set": "all", "stateful": "global",
    "distill": "all",
}  # fmt: skip
ALLOWED_VIEWS = {
    "align": ("pairs", "to_global", "to_global_mean"),
    "predict": ("to_global",),
    "branch": ("all", "global"),
    "pair": ("pairs", "global"),
    "set": ("all", "global"),
    "stateful": ("global", "all"),
    "distill": ("all",),
}


def resolve_views(definition: TermDef, views: str | None) -> str:
    """The views choice of a term: its kind's default, or ``views`` if the kind allows it."""
    if views is None:
        return DEFAULT_VIEWS[definition.kind]
    allowed = ALLOWED_VIEWS[definition.kind]
    if views not in allowed:
        raise ValueError(f"views of {definition.name!r}: expected one of {allowed} for a {definition.kind} term, got {views!r}")
    return views


def _mean(values: list[torch.Tensor]) -> torch.Tensor:
    # one value is returned as is, so a two-view alignment is f(z1, z2) itself, bit for bit
    return values[0] if len(values) == 1 else sum(values[1:], values[0]) / len(values)


def _pairs(count: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(count) for j in range(i + 1, count)]


def evaluate(
    definition: TermDef,
    params: dict[str, object],
    choice: str,
    views: Sequence[torch.Tensor],
    predictions: Sequence[torch.Tensor] | None,
    num_global: int,
    module: Callable[..., torch.Tensor] | None = None,
    targets: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """One term's value over the views (see the module docstring for each kind and choice)."""
    fn, kind = definition.fn, definition.kind
    if kind == "distill":
        return fn(list(views), list(targets), **params)  # type: ignore[arg-type]
    global_views = list(views[:num_global])
    if kind == "stateful":
        return module(*views) if choice == "all" else module(views[0], views[1])  # type: ignore[misc]
    if kind == "predict":
        pairs = [(a, g) for a in range(len(views)) for g in range(num_global) if a != g]
        return _mean([fn(predictions[a], views[g], **params) for a, g in pairs])  # type: ignore[index]
    if kind == "align":
        if choice == "to_global_mean":
            centre = _mean(global_views)
            return _mean([fn(z, centre, **params) for z in views])
        if choice == "to_global":
            pairs = [(a, g) for a in range(len(views)) for g in range(num_global) if a != g]
            return _mean([fn(views[a], views[g], **params) for a, g in pairs])
        return _mean([fn(views[i], views[j], **params) for i, j in _pairs(len(views))])
    chosen = global_views if choice == "global" else list(views)
    if kind == "set":
        return fn(chosen, **params)
    if kind == "pair":
        return _mean([fn(chosen[i], chosen[j], **params) for i, j in _pairs(len(chosen))])
    values = [fn(z, **params) for z in chosen]  # branch
    return sum(values[1:], values[0]) if definition.reduce == "sum" else _mean(values)

"""``Objective``: one alignment term plus any weighted list of regularizers.

    L = L_align(z1, z2) + sum_k lambda_k * Omega_k(z1, z2)

The classic methods are compositions of this kind (see :func:`covssl.methods.preset`);
a user builds their own from names::

    Objective.from_spec("mse:25 + variance_hinge:25 + covariance_penalty:1")

Numerics: the terms run on float32 (or float64) copies of the embeddings with autocast
disabled, whatever precision the network ran in — covariance statistics and log-determinants
in bf16 lose most of their digits, and the embeddings are small (B x d), so the upcast is cheap.

Distributed: terms whose ``scope`` is ``"global"`` (covariance statistics, coding rate, Barlow's
cross-correlation, InfoNCE's negatives) are evaluated on the batch gathered from all ranks with
gradients (:func:`covssl.distributed.gather`); ``"local"`` terms (alignment) on the local batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from covssl._checks import (
    NonFiniteError,
    all_finite,
    check_embeddings,
    check_pair,
    check_same_device,
    finite_values_checked,
)
from covssl.distributed import gather, is_distributed, max_over_ranks
from covssl.linalg import at_least_float32
from covssl.objectives.spec import ObjectiveSpec, TermSpec, duplicated, parse_spec, shown
from covssl.objectives.terms import TermDef, get_term
from covssl.objectives.views import evaluate, resolve_views


@dataclass
class ObjectiveOutput:
    """The total loss and each named term, unweighted and as its paper defines it."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]

    def as_floats(self) -> dict[str, float]:
        """Detached python floats for logging: {"loss": ..., "<term>": ...}."""
        return {"loss": float(self.loss.detach()), **{k: float(v.detach()) for k, v in self.terms.items()}}


def _validated(term: TermSpec) -> tuple[TermDef, dict[str, object]]:
    """Resolve a TermSpec against the registry and check its parameters: their names, types, and
    values by the term's own checks (the ones its function runs), so a bad value fails here."""
    definition = get_term(term.name)
    defaults = definition.defaults()
    params: dict[str, object] = {}
    integers = definition.integer_params()
    twice = duplicated(key for key, _ in term.params)
    if twice:
        raise ValueError(f"parameter {twice[0]!r} of term {term.name!r}: expected once, given more than once")
    for key, value in term.params:
        if key not in defaults:
            choices = ", ".join(defaults) or "none"
            raise ValueError(f"parameter {shown(key)} of term {term.name!r}: unknown; its parameters are: {choices}")
        default = defaults[key]
        if isinstance(default, bool) != isinstance(value, bool):
            kind = "true or false" if isinstance(default, bool) else "a number"
            raise ValueError(f"parameter {key!r} of term {term.name!r}: expected {kind}, got {value!r}")
        if key in integers and not isinstance(value, bool):
            if not float(value).is_integer():
                raise ValueError(f"parameter {key!r} of term {term.name!r}: expected an integer, got {value!r}")
            value = int(value)
        params[key] = value
    try:
        definition.check_params(params)
    except ValueError as error:
        raise ValueError(f"term {term.name!r}: {error}") from error
    return definition, params


def resolve_terms(terms: tuple[TermSpec, ...]) -> list[tuple[TermDef, dict[str, object]]]:
    """Each term's definition and checked parameters; at least one term, at most one alignment."""
    if not terms:
        raise ValueError("terms: expected at least one objective term, got none")
    resolved = [_validated(t) for t in terms]
    for term, (definition, _) in zip(terms, resolved):
        resolve_views(definition, term.views)  # the views choice fits the term's kind
    alignment = [t.name for t, (d, _) in zip(terms, resolved) if d.is_alignment]
    if len(alignment) > 1:
        raise ValueError(f"terms: expected at most one alignment term, got {alignment}")
    return resolved


def check_spec(text: str) -> tuple[TermDef, ...]:
    """Parse and check a spec string without building the objective; returns the terms' definitions.

    Examples:
        >>> [t.kind for t in check_spec("mse:25 + variance_hinge:25")]
        ['align', 'branch']
    """
    return tuple(definition for definition, _ in resolve_terms(parse_spec(text).terms))


class Objective(nn.Module):
    """A weighted sum of named terms (see :mod:`covssl.objectives.terms` for the registry).

    Args:
        terms: the terms, in order; at most one alignment term.
        normalize: l2-normalize the embeddings (and predictions) before every term.
        dim: the embedding dimension; needed only by stateful terms (CorInfoMax), which keep
            running statistics as buffers of this module (so they are checkpointed with it).

    Examples:
        >>> objective = Objective.from_spec("mse:25 + variance_hinge:25 + covariance_penalty:1")
        >>> out = objective(torch.randn(8, 16), torch.randn(8, 16))
        >>> sorted(out.terms)
        ['covariance_penalty', 'mse', 'variance_hinge']
        >>> Objective.from_spec(objective.spec).spec == objective.spec
        True
    """

    def __init__(self, terms: Iterable[TermSpec], normalize: bool = False, dim: int | None = None) -> None:
        super().__init__()
        self.term_specs = tuple(terms)
        self.normalize = bool(normalize)
        self._resolved = resolve_terms(self.term_specs)
        self._views = [resolve_views(d, t.views) for t, (d, _) in zip(self.term_specs, self._resolved)]
        self.stateful = nn.ModuleDict()
        for spec, (definition, params) in zip(self.term_specs, self._resolved):
            if definition.kind == "stateful":
                if dim is None:
                    raise ValueError(f"dim: term {spec.name!r} keeps running statistics and needs the embedding dimension")
                self.stateful[spec.name] = definition.fn(dim, **params)

    @classmethod
    def from_spec(cls, text: str, dim: int | None = None) -> "Objective":
        """Build an objective from a spec string (grammar in :mod:`covssl.objectives.spec`)."""
        parsed = parse_spec(text)
        return cls(parsed.terms, normalize="normalize" in parsed.options, dim=dim)

    @property
    def spec(self) -> str:
        """The canonical spec string; ``Objective.from_spec(o.spec)`` rebuilds ``o``."""
        return str(ObjectiveSpec(self.term_specs, ("normalize",) if self.normalize else ()))

    @property
    def needs_targets(self) -> bool:
        """True when a term compares the student with an EMA teacher's global views (SimDINO)."""
        return any(d.kind == "distill" for d, _ in self._resolved)

    @property
    def needs_predictions(self) -> bool:
        """True when a term compares predictor outputs with targets (SimSiam, BYOL)."""
        return any(d.kind == "predict" for d, _ in self._resolved)

    def extra_repr(self) -> str:
        return repr(self.spec)

    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        p1: torch.Tensor | None = None,
        p2: torch.Tensor | None = None,
    ) -> ObjectiveOutput:
        """Evaluate every term on embeddings z1, z2 (batch, dim) and optional predictions p1, p2.

        Returns:
            ObjectiveOutput with the total ``loss`` = sum sign * weight * term and ``terms``.
        """
        predictions = None if p1 is None and p2 is None else [p1, p2]
        return self.over_views([z1, z2], predictions, num_global=2)

    def over_views(
        self,
        views: Sequence[torch.Tensor],
        predictions: Sequence[torch.Tensor | None] | None = None,
        num_global: int | None = None,
        targets: Sequence[torch.Tensor] | None = None,
    ) -> ObjectiveOutput:
        """Evaluate every term on V >= 2 views (multi-crop): embeddings (batch, dim) each, global first.

        Args:
            views: the V views' embeddings z1..zV, the ``num_global`` global views first (local
                views may come from another resolution; every view has the same batch and dim).
            predictions: the predictor's outputs p1..pV, needed by predictor terms.
            num_global: how many of ``views`` are global (default: all of them).
            targets: an EMA teacher's embeddings of the global views, detached, needed by
                distillation terms (SimDINO).

        Returns:
            ObjectiveOutput with the total ``loss`` = sum sign * weight * term and ``terms``.
        """
        views = _checked_views(views, predictions, self.needs_predictions, num_global)
        num_global = len(views) if num_global is None else num_global
        if self.needs_targets and (targets is None or len(targets) != num_global):
            raise ValueError(
                f"targets: this objective compares the views with an EMA teacher's {num_global} global views; "
                f"pass them (set model.ema_momentum), got {'none' if targets is None else len(targets)}"
            )
        inputs = {f"z{i + 1}": z for i, z in enumerate(views)}
        if self.needs_targets:
            with finite_values_checked():  # shapes here; their values with the views', below
                for i, t in enumerate(targets):  # type: ignore[arg-type]
                    check_pair(views[0], t, ("z1", f"t{i + 1}"))
                    inputs[f"t{i + 1}"] = t
        if self.needs_predictions:
            inputs |= {f"p{i + 1}": p for i, p in enumerate(predictions)}  # type: ignore[arg-type]
        finite = all_finite(inputs.values())
        if is_distributed():
            # decided together: a rank that raised alone would leave the others waiting in the gather
            if max_over_ranks(int(not finite)):
                raise NonFiniteError("z1, z2: expected finite values, got NaN/inf embeddings on at least one rank")
        elif not finite:
            for name, value in inputs.items():
                check_embeddings(value, name)  # raises, naming the input and its NaN/inf count
        with torch.autocast(device_type=views[0].device.type, enabled=False), finite_values_checked():
            local = [self._prepared(z) for z in views]
            preds = [self._prepared(p) for p in predictions] if self.needs_predictions else None  # type: ignore[union-attr]
            teacher = [self._prepared(t) for t in targets] if self.needs_targets else None  # type: ignore[union-attr]
            gathered: list[torch.Tensor] | None = None
            gathered_teacher: list[torch.Tensor] | None = None
            total = local[0].new_zeros(())
            terms: dict[str, torch.Tensor] = {}
            for spec, (definition, params), choice in zip(self.term_specs, self._resolved, self._views):
                seen, seen_teacher = local, teacher
                if definition.scope == "global":
                    gathered = gathered or [gather(z) for z in local]
                    seen = gathered
                    if teacher is not None:
                        gathered_teacher = gathered_teacher or [gather(t) for t in teacher]
                        seen_teacher = gathered_teacher
                module = self.stateful[spec.name] if definition.kind == "stateful" else None
                value = evaluate(definition, params, choice, seen, preds, num_global, module, seen_teacher)
                terms[spec.name] = value
                total = total + definition.sign * spec.weight * value
        return ObjectiveOutput(total, terms)

    def _prepared(self, z: torch.Tensor) -> torch.Tensor:
        z = at_least_float32(z)
        return F.normalize(z, dim=1) if self.normalize else z


def _checked_views(
    views: object, predictions: object, needs_predictions: bool, num_global: int | None
) -> list[torch.Tensor]:
    """Shapes and dtypes of the views (and predictions); their values are checked together after."""
    if not isinstance(views, (list, tuple)) or len(views) < 2:
        got = f"{len(views)} views" if isinstance(views, (list, tuple)) else type(views).__name__
        raise ValueError(f"views: expected a sequence of at least 2 embedding batches, got {got}")
    if num_global is not None and (isinstance(num_global, bool) or not isinstance(num_global, int)
                                   or not 1 <= num_global <= len(views)):
        raise ValueError(f"num_global: expected an integer in [1, {len(views)}] (the views given), got {num_global!r}")
    with finite_values_checked():  # shapes and dtypes here; NaN/inf after, in one read from the device
        for i, z in enumerate(views[1:], start=2):
            check_pair(views[0], z, ("z1", f"z{i}"))
        if needs_predictions:
            names = ", ".join(f"p{i + 1}" for i in range(len(views)))
            if predictions is None or len(predictions) != len(views) or any(p is None for p in predictions):
                raise ValueError(f"{names}: this objective has a predictor term (negative_cosine); pass {names}")
            for i, p in enumerate(predictions, start=1):
                # the device only: a predictor may end in another dtype than the projector under
                # autocast, and both are upcast to float32 before the terms see them
                check_same_device(p, views[0], f"p{i}", "z1")
                check_embeddings(p, f"p{i}")
    return list(views)

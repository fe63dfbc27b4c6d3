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
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from covssl._checks import NonFiniteError, all_finite, check_embeddings, check_pair, finite_values_checked
from covssl.distributed import gather, is_distributed, max_over_ranks
from covssl.linalg import at_least_float32
from covssl.objectives.spec import ObjectiveSpec, TermSpec, parse_spec
from covssl.objectives.terms import TermDef, get_term


@dataclass
class ObjectiveOutput:
    """The total loss and each named term, unweighted and as its paper defines it."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]

    def as_floats(self) -> dict[str, float]:
        """Detached python floats for logging: {"loss": ..., "<term>": ...}."""
        return {"loss": float(self.loss.detach()), **{k: float(v.detach()) for k, v in self.terms.items()}}


def _validated(term: TermSpec) -> tuple[TermDef, dict[str, object]]:
    """Resolve a TermSpec against the registry and check its parameters."""
    definition = get_term(term.name)
    defaults = definition.defaults()
    params: dict[str, object] = {}
    integers = definition.integer_params()
    for key, value in term.params:
        if key not in defaults:
            choices = ", ".join(defaults) or "none"
            raise ValueError(f"parameter {key!r} of term {term.name!r}: unknown; its parameters are: {choices}")
        default = defaults[key]
        if isinstance(default, bool) != isinstance(value, bool):
            kind = "true or false" if isinstance(default, bool) else "a number"
            raise ValueError(f"parameter {key!r} of term {term.name!r}: expected {kind}, got {value!r}")
        if key in integers and not isinstance(value, bool):
            if not float(value).is_integer():
                raise ValueError(f"parameter {key!r} of term {term.name!r}: expected an integer, got {value!r}")
            value = int(value)
        params[key] = value
    return definition, params


def resolve_terms(terms: tuple[TermSpec, ...]) -> list[tuple[TermDef, dict[str, object]]]:
    """Each term's definition and checked parameters; at least one term, at most one alignment."""
    if not terms:
        raise ValueError("terms: expected at least one objective term, got none")
    resolved = [_validated(t) for t in terms]
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
        with finite_values_checked():  # shapes and dtypes here; NaN/inf below, in one read from the device
            check_pair(z1, z2)
            if self.needs_predictions:
                if p1 is None or p2 is None:
                    raise ValueError("p1, p2: this objective has a predictor term (negative_cosine); pass p1 and p2")
                check_embeddings(p1, "p1")
                check_embeddings(p2, "p2")
        inputs = {"z1": z1, "z2": z2, "p1": p1, "p2": p2} if self.needs_predictions else {"z1": z1, "z2": z2}
        finite = all_finite(inputs.values())
        if is_distributed():
            # decided together: a rank that raised alone would leave the others waiting in the gather
            if max_over_ranks(int(not finite)):
                raise NonFiniteError("z1, z2: expected finite values, got NaN/inf embeddings on at least one rank")
        elif not finite:
            for name, value in inputs.items():
                check_embeddings(value, name)  # raises, naming the input and its NaN/inf count
        with torch.autocast(device_type=z1.device.type, enabled=False), finite_values_checked():
            views = [at_least_float32(v) if v is not None else None for v in (z1, z2, p1, p2)]
            if self.normalize:
                views = [F.normalize(v, dim=1) if v is not None else None for v in views]
            z1, z2, p1, p2 = views
            gathered: tuple[torch.Tensor, torch.Tensor] | None = None
            total = z1.new_zeros(())
            terms: dict[str, torch.Tensor] = {}
            for spec, (definition, params) in zip(self.term_specs, self._resolved):
                a, b = z1, z2
                if definition.scope == "global":
                    gathered = gathered or (gather(z1), gather(z2))
                    a, b = gathered
                if definition.kind == "stateful":
                    value = self.stateful[spec.name](a, b)
                else:
                    value = _evaluate(definition, params, a, b, p1, p2)
                terms[spec.name] = value
                total = total + definition.sign * spec.weight * value
        return ObjectiveOutput(total, terms)


def _evaluate(
    definition: TermDef,
    params: dict[str, object],
    z1: torch.Tensor,
    z2: torch.Tensor,
    p1: torch.Tensor | None,
    p2: torch.Tensor | None,
) -> torch.Tensor:
    fn = definition.fn
    if definition.kind == "align" or definition.kind == "pair":
        return fn(z1, z2, **params)
    if definition.kind == "predict":
        # symmetric: each view's prediction chases the other view's (stop-gradient) target
        return 0.5 * fn(p1, z2, **params) + 0.5 * fn(p2, z1, **params)
    first, second = fn(z1, **params), fn(z2, **params)
    return first + second if definition.reduce == "sum" else 0.5 * (first + second)

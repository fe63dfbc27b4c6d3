"""The registry of named objective terms that :class:`~covssl.objectives.Objective` composes.

A term turns the views into one scalar. Four shapes of term exist:

* alignment terms act on the pair (z1, z2), or on predictions and targets (p, z);
* per-branch regularizers act on one view's batch Z and are reduced over the views
  (``"mean"`` or ``"sum"``, whichever the paper's code does);
* pair regularizers act on two views at once (Barlow Twins' cross-correlation, InfoNCE);
* set terms act on all the views at once (FroSSL, MMCR's centroids).

With more than two views, :mod:`covssl.objectives.views` says which views each term sees.

``sign`` is +1 for quantities to minimize and -1 for quantities to maximize (coding rate,
matrix entropy): the term is logged as the paper defines it and enters the total loss as
``sign * weight * value``.

``scope`` says which batch a term needs under torch.distributed: ``"local"`` terms are
averages over samples and are computed per rank; ``"global"`` terms are functions of the
batch covariance (or of the negatives) and are computed on the batch gathered from all ranks.

``checks`` holds, for each keyword parameter, the check its function runs on it when called
(``check_positive``, ...): a spec is checked with the same code, so ``coding_rate(eps=0)`` is
refused when the spec is read, with the message the call would give, not at the first step.
"""

from __future__ import annotations

from covssl.registry import Registry

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
import torch.nn.functional as F

from covssl._checks import check_non_negative, check_positive
from covssl.objectives.barlow_twins import barlow_twins_loss
from covssl.objectives.rate_distortion import coding_rate, taylor_coding_rate
from covssl.objectives.corinfomax import CorInfoMaxRegularizer, _check_forgetting
from covssl.objectives.info_nce import info_nce_loss
from covssl.objectives.matrix_information import matrix_entropy
from covssl.objectives.simsiam import cosine_alignment, negative_cosine, negative_cosine_no_stopgrad
from covssl.objectives.alignment_uniformity import uniformity
from covssl.objectives.spec import shown
from covssl.objectives.vicreg import covariance_penalty, variance_hinge

Kind = Literal["align", "branch", "pair", "predict", "set", "distill", "stateful"]
# check(value, name) raises ValueError naming ``name`` unless ``value`` is valid (check_positive, ...)
ParamCheck = Callable[[object, str], object]


def unnamed(check: Callable[[object], object]) -> ParamCheck:
    """Adapt a check that names its parameter itself, ``check(value)``, to ``check(value, name)``."""

    def run(value: object, name: str) -> object:
        return check(value)

    return run


@dataclass(frozen=True)
class TermDef:
    """How to evaluate one named term.

    Attributes:
        name: the name used in spec strings and logs.
        fn: the pure function; its keyword arguments (after the tensors) are the term's params.
        kind: "align" fn(z1, z2); "predict" fn(p, z) applied symmetrically; "branch" fn(z)
            reduced over the views; "pair" fn(z1, z2); "stateful" fn is an nn.Module class
            built once as fn(dim, **params) and called on (z1, z2) (running statistics); "set"
            fn(views) sees a list of all the views at once (see :mod:`covssl.objectives.views`);
            "distill" fn(student_views, teacher_views) compares every student view with an EMA
            teacher's global views (SimDINO).
        reduce: for "branch" terms, "mean" or "sum" over the two views.
        sign: +1 if minimized, -1 if maximized.
        scope: "local" (per rank) or "global" (gathered batch) under torch.distributed.
        formula: one line shown by ``covssl methods``.
        checks: for each keyword parameter, the check ``fn`` runs on it (see :data:`ParamCheck`).
    """

    name: str
    fn: Callable[..., torch.Tensor]
    kind: Kind
    formula: str
    reduce: Literal["mean", "sum"] = "mean"
    sign: float = 1.0
    scope: Literal["local", "global"] = "global"
    checks: Mapping[str, ParamCheck] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.checks) - set(self.defaults()))
        if unknown:
            raise ValueError(f"checks of term {self.name!r}: expected parameters of its function, got {unknown}")

    def check_params(self, params: Mapping[str, object]) -> None:
        """Run each given parameter's check: the rule ``fn`` applies to it when called."""
        for key, value in params.items():
            check = self.checks.get(key)
            if check is not None:
                check(value, key)

    @property
    def is_alignment(self) -> bool:
        return self.kind in ("align", "predict")

    def defaults(self) -> dict[str, object]:
        """The keyword parameters of ``fn`` with their defaults (tensor arguments excluded)."""
        params = inspect.signature(self.fn).parameters.values()
        excluded = ("path", "dim", "directions", "generator")  # not spec values: tensors, generators
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty and p.name not in excluded}

    def integer_params(self) -> set[str]:
        """Parameters that take an integer: an int default, or an ``int | None`` annotation."""
        params = inspect.signature(self.fn).parameters.values()
        found = set()
        for p in params:
            annotation = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
            is_int_default = isinstance(p.default, int) and not isinstance(p.default, bool)
            if is_int_default or (p.default is None and annotation.replace(" ", "") in ("int|None", "Optional[int]")):
                found.add(p.name)
        return found


def _loss_of(fn: Callable[..., dict[str, torch.Tensor]]) -> Callable[..., torch.Tensor]:
    """Adapt a function returning a dict of named terms to return its total ``"loss"``."""

    def total(z1: torch.Tensor, z2: torch.Tensor, **params: object) -> torch.Tensor:
        return fn(z1, z2, **params)["loss"]

    total.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    total.__doc__ = fn.__doc__
    return total


def _set_loss_of(fn: Callable[..., dict[str, torch.Tensor]]) -> Callable[..., torch.Tensor]:
    """Adapt a function of a list of views returning a dict of named terms to return its ``"loss"``."""

    def total(views: list[torch.Tensor], **params: object) -> torch.Tensor:
        return fn(views, **params)["loss"]

    total.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    total.__doc__ = fn.__doc__
    return total


def _distill_loss_of(fn: Callable[..., dict[str, torch.Tensor]]) -> Callable[..., torch.Tensor]:
    """Adapt fn(student_views, teacher_views, **params) returning a dict to return its ``"loss"``."""

    def total(student: list[torch.Tensor], teacher: list[torch.Tensor], **params: object) -> torch.Tensor:
        return fn(student, teacher, **params)["loss"]

    total.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    total.__doc__ = fn.__doc__
    return total


def mse(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared error over batch and dimensions, VICReg's invariance term: mean (z1 - z2)^2."""
    return F.mse_loss(z1, z2)


def squared_distance(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared Euclidean distance: mean_b ||z1_b - z2_b||^2."""
    return (z1 - z2).pow(2).sum(dim=1).mean()


TERMS: Registry[TermDef] = Registry("objective term")


def register_term(term: TermDef) -> TermDef:
    """Add a term to the registry; a name can be registered only once."""
    return TERMS.register(term.name, term)


def get_term(name: str) -> TermDef:
    """Look a term up by name, with the list of choices when it is unknown."""
    if name not in TERMS:
        raise ValueError(f"unknown objective term {shown(name)}; choose one of: {', '.join(sorted(TERMS))}")
    return TERMS[name]


for _term in (
    TermDef("mse", mse, "align", "mean_bj (z1 - z2)^2", scope="local"),
    TermDef("squared_distance", squared_distance, "align", "mean_b ||z1_b - z2_b||^2", scope="local"),
    TermDef("cosine", cosine_alignment, "align", "mean_b (1 - cos(z1_b, z2_b))", scope="local"),
    TermDef(
        "negative_cosine",
        negative_cosine,
        "predict",
        "D(p1, sg(z2))/2 + D(p2, sg(z1))/2, D = -cos  (needs a predictor)",
        scope="local",
    ),
    TermDef(
        "negative_cosine_no_stopgrad",
        negative_cosine_no_stopgrad,
        "predict",
        "D(p1, z2)/2 + D(p2, z1)/2, D = -cos, no stop-gradient (SimSiam's ablation: collapses)",
        scope="local",
    ),
    TermDef(
        "variance_hinge",
        variance_hinge,
        "branch",
        "mean_j relu(gamma - sqrt(Var_j + eps)), mean over views",
        checks={"gamma": check_positive, "eps": check_positive},
    ),
    TermDef(
        "covariance_penalty",
        covariance_penalty,
        "branch",
        "(1/d) sum_{i!=j} C_ij^2, summed over views",
        reduce="sum",
    ),
    TermDef(
        "barlow_twins",
        _loss_of(barlow_twins_loss),
        "pair",
        "sum_i (1 - C_ii)^2 + lambd sum_{i!=j} C_ij^2, C = cross-correlation",
        checks={"lambd": check_non_negative, "eps": check_positive},
    ),
    TermDef(
        "coding_rate",
        coding_rate,
        "branch",
        "R = 1/2 logdet(I + d/(B eps^2) Z^T Z), maximized, mean over views",
        sign=-1.0,
        checks={"eps": check_positive},
    ),
    TermDef(
        "taylor_coding_rate",
        taylor_coding_rate,
        "branch",
        "1/2 (a tr S - a^2/2 tr S^2), S = Z^T Z / B, a = d/eps^2, maximized",
        sign=-1.0,
        checks={"eps": check_positive},
    ),
    TermDef(
        "info_nce",
        info_nce_loss,
        "pair",
        "NT-Xent over 2B views, 2B-2 negatives per anchor",
        checks={"temperature": check_positive},
    ),
    TermDef(
        "uniformity",
        uniformity,
        "branch",
        "log mean_{i<j} exp(-t ||zn_i - zn_j||^2), mean over views",
        checks={"t": check_positive},
    ),
    TermDef(
        "matrix_entropy",
        matrix_entropy,
        "branch",
        "-tr(K log K), K = Sigma / tr Sigma, maximized, mean over views",
        sign=-1.0,
    ),
    TermDef(
        "corinfomax",
        CorInfoMaxRegularizer,
        "stateful",
        "-(logdet(R1 + eps I) + logdet(R2 + eps I)) / d, R_k running covariance of view k",
        checks={
            "eps": check_positive,
            "lambda_r": _check_forgetting,
            "lambda_mu": _check_forgetting,
            "r_init": check_positive,
        },
    ),
):
    register_term(_term)

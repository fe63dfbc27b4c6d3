"""The classic methods as named compositions of :class:`~covssl.objectives.Objective`.

Each preset is nothing but a spec string: ``covssl methods`` prints them, and a user who wants a
variant copies the string and edits it.
"""

from __future__ import annotations

from dataclasses import dataclass

from covssl.objectives.objective import Objective


@dataclass(frozen=True)
class Preset:
    """A named objective: its spec string, a one-line description and the paper."""

    name: str
    spec: str
    description: str
    paper: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "vicreg",
            "mse:25 + variance_hinge:25 + covariance_penalty:1",
            "invariance + variance hinge + off-diagonal covariance (official weights 25/25/1)",
            "Bardes, Ponce, LeCun 2021, https://arxiv.org/abs/2105.04906",
        ),
        Preset(
            "barlow_twins",
            "barlow_twins(lambd=0.0051):1",
            "cross-correlation of standardized views driven to the identity",
            "Zbontar et al. 2021, https://arxiv.org/abs/2103.03230",
        ),
        Preset(
            "coding_rate",
            # R is a sum over the batch while the alignment is a mean, so R's weight is small; pilot on
            # CIFAR-10 (batch 128, 6 epochs, kNN): weight 0.1 -> 18.4%, 0.02 -> 28.3%, 0.005 -> 31.0%
            "cosine:1 + coding_rate(eps=0.5):0.005; normalize",
            "SimDINO-style: l2-normalize, align the views, maximize the coding rate (log-det)",
            "Wu et al. 2025, https://arxiv.org/abs/2502.10385; Yu et al. 2020, https://arxiv.org/abs/2006.08558",
        ),
        Preset(
            "simclr",
            "info_nce(temperature=0.5):1",
            "NT-Xent contrastive loss, 2B-2 negatives per anchor",
            "Chen et al. 2020, https://arxiv.org/abs/2002.05709",
        ),
        Preset(
            "simsiam",
            "negative_cosine:1",
            "predictor + stop-gradient, symmetric negative cosine",
            "Chen & He 2021, https://arxiv.org/abs/2011.10566",
        ),
        Preset(
            "corinfomax",
            "mse:250 + corinfomax:1; normalize",
            "running-covariance log-det (per view) + MSE alignment, official CIFAR-10 weights (d=64)",
            "Ozsoy et al. 2022, https://arxiv.org/abs/2209.07999",
        ),
    )
}


def list_presets() -> list[str]:
    """Names of the objective presets, sorted."""
    return sorted(PRESETS)


def preset(name: str, dim: int | None = None) -> Objective:
    """Build a preset objective by name.

    ``dim`` (the embedding dimension) is needed by presets with running statistics (corinfomax).

    Examples:
        >>> preset("vicreg").spec
        'mse:25 + variance_hinge:25 + covariance_penalty:1'
    """
    if name not in PRESETS:
        raise ValueError(f"unknown objective preset {name!r}; choose one of: {', '.join(list_presets())}")
    return Objective.from_spec(PRESETS[name].spec, dim=dim)

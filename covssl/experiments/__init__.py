"""The experiments that make covssl's claims about the family runnable: ``covssl experiment NAME --out DIR``.

* ``taylor``: VICReg's terms are the 2nd-order Taylor expansion of the coding rate (gap ~ a^3);
* ``isotropy``: at a fixed trace the log-det is maximal for an isotropic covariance;
* ``simsiam-collapse``: SimSiam without stop-gradient (or predictor) collapses, with both it does not;
* ``align-only``: alignment alone collapses, alignment + any regularizer does not.

Each writes PNG figures plus ``summary.md`` / ``summary.json`` with the measured numbers and
whether each claim held; ``quick=True`` is the reduced mode the test suite runs. The registry
is filled by the explicit imports below.
"""

from covssl.experiments import align_only as align_only  # registers "align-only"
from covssl.experiments import isotropy as isotropy  # registers "isotropy"
from covssl.experiments import simsiam_collapse as simsiam_collapse  # registers "simsiam-collapse"
from covssl.experiments import taylor as taylor  # registers "taylor"
from covssl.experiments.registry import (
    EXPERIMENTS,
    Claim,
    Experiment,
    ExperimentOptions,
    ExperimentSummary,
    get_experiment,
    list_experiments,
    register_experiment,
    run_experiment,
)

__all__ = [
    "EXPERIMENTS",
    "Claim",
    "Experiment",
    "ExperimentOptions",
    "ExperimentSummary",
    "get_experiment",
    "list_experiments",
    "register_experiment",
    "run_experiment",
]

"""The math layer of the unified objective L = L_align(z1, z2) + sum_k lambda_k * Omega_k(Sigma).

Pure functions on (batch, dim) tensors, one module per loss, plus :class:`Objective`, which
composes them by name. Imports only torch.
"""

from covssl.linalg import covariance
from covssl.objectives.barlow_twins import barlow_twins_loss
from covssl.objectives.rate_distortion import coding_rate, taylor_coding_rate
from covssl.objectives.info_nce import info_nce_loss
from covssl.objectives.matrix_information import matrix_entropy
from covssl.objectives.simsiam import cosine_alignment, negative_cosine, simsiam_loss
from covssl.objectives.alignment_uniformity import uniformity
from covssl.objectives.vicreg import covariance_penalty, variance_hinge, vicreg_loss
from covssl.objectives.objective import Objective, ObjectiveOutput
from covssl.objectives.terms import TERMS, TermDef, get_term

__all__ = [
    "TERMS",
    "Objective",
    "ObjectiveOutput",
    "TermDef",
    "barlow_twins_loss",
    "coding_rate",
    "cosine_alignment",
    "covariance",
    "covariance_penalty",
    "get_term",
    "info_nce_loss",
    "matrix_entropy",
    "negative_cosine",
    "simsiam_loss",
    "taylor_coding_rate",
    "uniformity",
    "variance_hinge",
    "vicreg_loss",
]

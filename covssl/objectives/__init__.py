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
from covssl.objectives.frossl import frossl_loss, frossl_regularizer
from covssl.objectives.matrix_ssl import matrix_ssl_loss
from covssl.objectives.mec import mec_loss
from covssl.objectives.spectral_contrastive import spectral_contrastive_loss
from covssl.objectives.tico import TiCoRegularizer, tico_loss
from covssl.objectives.vibcreg import correlation_penalty, vibcreg_loss
from covssl.objectives.visreg_regularizer import VISRegRegularizer, visreg
from covssl.objectives.vne import i_vne_loss, von_neumann_entropy
from covssl.objectives.wasserstein_uniformity import w2_uniformity
from covssl.objectives.wmse import cholesky_whiten, wmse_loss
from covssl.objectives.emp_ssl import bag_of_features, emp_ssl_loss
from covssl.objectives.lejepa import SIGRegRegularizer, lejepa_loss, sigreg
from covssl.objectives.mmcr import mmcr_loss
from covssl.objectives.simdino import simdino_loss
from covssl.objectives.objective import Objective, ObjectiveOutput
from covssl.objectives.terms import TERMS, TermDef, get_term
from covssl.objectives import family  # noqa: F401  (registers the rest of the family's terms)

__all__ = [
    "Objective",
    "ObjectiveOutput",
    "SIGRegRegularizer",
    "TERMS",
    "TermDef",
    "TiCoRegularizer",
    "VISRegRegularizer",
    "bag_of_features",
    "barlow_twins_loss",
    "cholesky_whiten",
    "coding_rate",
    "correlation_penalty",
    "cosine_alignment",
    "covariance",
    "covariance_penalty",
    "emp_ssl_loss",
    "frossl_loss",
    "frossl_regularizer",
    "get_term",
    "i_vne_loss",
    "info_nce_loss",
    "lejepa_loss",
    "matrix_entropy",
    "matrix_ssl_loss",
    "mec_loss",
    "mmcr_loss",
    "negative_cosine",
    "sigreg",
    "simdino_loss",
    "simsiam_loss",
    "spectral_contrastive_loss",
    "taylor_coding_rate",
    "tico_loss",
    "uniformity",
    "variance_hinge",
    "vibcreg_loss",
    "vicreg_loss",
    "visreg",
    "von_neumann_entropy",
    "w2_uniformity",
    "wmse_loss",
]

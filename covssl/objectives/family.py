"""The rest of the family's terms, registered in :data:`covssl.objectives.terms.TERMS`.

Each is the official code's form (see each module's docstring); the classic terms are
registered in :mod:`covssl.objectives.terms`. Importing :mod:`covssl.objectives` registers both.
"""

from __future__ import annotations

from functools import partial

from covssl._checks import check_int_at_least, check_non_negative, check_positive, check_unit_interval
from covssl.objectives.frossl import frossl_loss
from covssl.objectives.matrix_ssl import matrix_ssl_loss
from covssl.objectives.mec import _check_order, mec_loss
from covssl.objectives.slicing import _check_count
from covssl.objectives.spectral_contrastive import spectral_contrastive_loss
from covssl.objectives.tico import TiCoRegularizer, _check_beta
from covssl.objectives.vibcreg import correlation_penalty
from covssl.objectives.visreg_regularizer import VISRegRegularizer
from covssl.objectives.vne import von_neumann_entropy
from covssl.objectives.wasserstein_uniformity import w2_uniformity
from covssl.objectives.wmse import _check_eps as _check_shrinkage, wmse_loss
from covssl.objectives.emp_ssl import emp_ssl_loss
from covssl.objectives.lejepa import SIGRegRegularizer, lejepa_loss
from covssl.objectives.mmcr import mmcr_loss
from covssl.objectives.simdino import simdino_loss
from covssl.objectives.terms import TermDef, _distill_loss_of, _loss_of, _set_loss_of, register_term, unnamed

# Each term's ``checks`` are the checks its function runs on its parameters. Where that rule also
# needs the views (num_global <= the number of views; w_size divides the batch), a spec is held
# to the part that stands alone: num_global a positive int, w_size an int >= 2.
_SEED = partial(check_int_at_least, low=0)  # SlicedRegularizer's rule for its seed, with its message
_WINDOW = partial(check_int_at_least, low=2)
_SLICED = {"num_slices": _check_count, "seed": _SEED}


# The rest of the family: each the official code's form (see each module's docstring).
for _term in (
    TermDef(
        "visreg",
        VISRegRegularizer,
        "stateful",
        "mean_j (1 - s_j)^2 + W2^2(sorted slices, N(0,1) quantiles) + mean_j m_j^2, fresh directions each step",
        checks={
            **_SLICED,
            "scale_weight": check_non_negative,
            "shape_weight": check_non_negative,
            "centre_weight": check_non_negative,
        },
    ),
    TermDef(
        "w2_uniformity",
        w2_uniformity,
        "branch",
        "sqrt(||mu||^2 + 1 + tr S - 2/sqrt(d) tr S^(1/2)): W2 of N(mu, S) of unit rows to N(0, I/d)",
    ),
    TermDef(
        "frossl",
        _set_loss_of(frossl_loss),
        "set",
        "sum_v 2 log ||K_v / tr K_v||_F + V d sum_v mse(zn_v, view mean), zn: unit-norm columns",
        checks={"invariance_weight": check_non_negative},
    ),
    TermDef(
        "spectral_contrastive",
        _loss_of(spectral_contrastive_loss),
        "pair",
        "(-2 mean_i <z1_i, z2_i> + sum_{i!=j} <z1_i, z2_j>^2 / (B (B-1))) / mu, rows clipped to norm sqrt(mu)",
        checks={"mu": check_positive},
    ),
    TermDef(
        "tico",
        TiCoRegularizer,
        "stateful",
        "1 - mean <zn1, zn2> + rho mean zn1^T C zn1, C <- beta C + (1 - beta) sg(zn1^T zn1) / B",
        checks={"beta": unnamed(_check_beta), "rho": check_non_negative},
    ),
    TermDef(
        "mec",
        _loss_of(mec_loss),
        "pair",
        "-(eps/d) tr sum_k (-1)^(k+1) c^k / k, c = d/(B eps) Z1n Z2n^T (Taylor series of logdet(I + c))",
        checks={"eps": check_positive, "order": unnamed(_check_order)},
    ),
    TermDef(
        "matrix_ssl",
        _loss_of(matrix_ssl_loss),
        "pair",
        "matrix cross-entropy: -lambd tr log(C12 + mu I) + gamma/2 sum_{u!=v} -tr[(Cuu + mu I) log(Cvv + mu I)]",
        checks={
            "lambd": check_non_negative,
            "mu": check_positive,
            "order": unnamed(_check_order),
            "gamma": check_non_negative,
        },
    ),
    TermDef(
        "wmse",
        _loss_of(wmse_loss),
        "pair",
        "2 - 2 mean_b cos(W1_b, W2_b), W = each view whitened by its covariance's Cholesky factor",
        checks={"w_size": _WINDOW, "eps": unnamed(_check_shrinkage)},
    ),
    TermDef(
        "correlation_penalty",
        correlation_penalty,
        "branch",
        "(1/d^2) sum_{i!=j} R_ij^2, R = correlation matrix (VIbCReg), summed over views",
        reduce="sum",
    ),
    TermDef(
        "von_neumann_entropy",
        von_neumann_entropy,
        "branch",
        "-tr(C log C), C = Zn^T Zn / B (unit rows, uncentred), maximized, mean over views",
        sign=-1.0,
    ),
):
    register_term(_term)

# Terms over any number of views (multi-crop; see covssl.objectives.views).
for _term in (
    TermDef(
        "sigreg",
        SIGRegRegularizer,
        "stateful",
        "N mean_k int |ecf_k(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt over random slices: Epps-Pulley to N(0, 1)",
        checks=_SLICED,
    ),
    TermDef(
        "lejepa",
        _set_loss_of(lejepa_loss),
        "set",
        "(1 - lambd) mean_v ||z_v - mean of global views||^2 + lambd mean_v SIGReg(z_v), shared slices",
        checks={"num_global": _check_count, "lambd": check_unit_interval, "num_slices": _check_count},
    ),
    TermDef(
        "mmcr",
        _set_loss_of(mmcr_loss),
        "set",
        "lambd mean_b ||Z_b||_* - ||C||_*, C = the centroids of each image's unit-norm views",
        checks={"lambd": check_non_negative},
    ),
    TermDef(
        "emp_ssl",
        _set_loss_of(emp_ssl_loss),
        "set",
        "-lambd mean cos(z_v, patch mean) - mean_v 1/2 logdet(I + d/(B eps) Z_v^T Z_v)",
        checks={"eps": check_positive, "lambd": check_non_negative},
    ),
):
    register_term(_term)
register_term(
    TermDef(
        "simdino",
        _distill_loss_of(simdino_loss),
        "distill",
        "-coeff mean cos(teacher global g, student view v != g) - (d+B)/(dB) mean_g 1/2 logdet(I + d/(B eps) W_g^T W_g)",
        checks={"eps": check_positive, "coeff": check_non_negative, "num_global": _check_count},
    )
)

"""covssl: covariance-regularized self-supervised learning.

Every negative-free SSL method is "align the two views" plus "keep the embedding covariance
full-rank and isotropic":

    L = L_align(z1, z2) + sum_k lambda_k * Omega_k(Sigma)

The math layer (:mod:`covssl.objectives`, :mod:`covssl.linalg`, :mod:`covssl.diagnostics`)
imports only torch; training, evaluation and the CLI are built on top of it.
"""

__version__ = "0.1.0"

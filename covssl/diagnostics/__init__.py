"""Collapse diagnostics: pure functions of a batch of embeddings (batch, dim).

Each returns Python floats (or a float64 tensor for the spectrum), computed in float64
without autograd, and documents its healthy and collapsed values:

* spectrum, effective rank, isotropy (``spectrum``);
* SimSiam's std of normalized embeddings, Zhang et al.'s center/residual decomposition and
  gradient split (``decomposition``);
* alignment and uniformity on the hypersphere (``hypersphere``);
* the gap between the coding rate and its second-order Taylor surrogate (``taylor``);
* stochastic Lanczos quadrature for log-determinants of large operators (``slq``);
* label-free quality metrics, to rank healthy runs without labels: RankMe, alpha-ReQ, NESum,
  stable rank, LiDAR, W2 uniformity (``quality``);
* ``collapse_report``: all of them in one JSON-serializable dict (``report``);
* ``Monitor``: all of them every N steps of any training loop, as plain floats (``monitor``);
* ``verdict``: healthy, partially collapsed or collapsed, from that report (``verdict``).
"""

from covssl.diagnostics.decomposition import center_residual, gradient_split, std_of_normalized
from covssl.diagnostics.hypersphere import alignment, uniformity
from covssl.diagnostics.lidar import lidar
from covssl.diagnostics.monitor import Monitor
from covssl.diagnostics.quality import alpha_req, label_free_metrics, nesum, rankme, stable_rank, w2_uniformity
from covssl.diagnostics.report import collapse_report, json_safe
from covssl.diagnostics.slq import logdet_slq, logdet_slq_gram
from covssl.diagnostics.spectrum import effective_rank, isotropy, spectrum
from covssl.diagnostics.taylor import coding_rate_terms, taylor_gap
from covssl.diagnostics.verdict import verdict

__all__ = [
    "Monitor",
    "verdict",
    "alignment",
    "alpha_req",
    "center_residual",
    "coding_rate_terms",
    "collapse_report",
    "effective_rank",
    "gradient_split",
    "isotropy",
    "json_safe",
    "label_free_metrics",
    "lidar",
    "logdet_slq",
    "logdet_slq_gram",
    "nesum",
    "rankme",
    "spectrum",
    "stable_rank",
    "std_of_normalized",
    "taylor_gap",
    "uniformity",
    "w2_uniformity",
]

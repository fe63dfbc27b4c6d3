"""A collapse and quality monitor for any training loop: embeddings in, plain floats out.

[0] Garrido et al. 2023 (RankMe), https://arxiv.org/abs/2210.02885; Thilak et al. 2024 (LiDAR),
    https://arxiv.org/abs/2312.04000; the other metrics and their papers: :mod:`.quality`,
    :mod:`.spectrum`, :mod:`.decomposition`.

    monitor = Monitor(every=100)
    for step, (x1, x2) in enumerate(loader):
        z1, z2 = model(x1), model(x2)
        loss = objective(z1, z2)
        ...
        metrics = monitor.update(step, z1, z2)   # None except every 100 steps
        if metrics:
            logger.log(metrics, step=step)         # any logger: every value is a float

The monitor reads detached copies and never touches autograd. Under torch.distributed it
gathers the embeddings of all ranks first, so every rank reports the metrics of the global
batch (call ``update`` on every rank: the gather is a collective).
"""

from __future__ import annotations

import math

import torch

from covssl import distributed
from covssl.diagnostics.decomposition import std_of_normalized
from covssl.diagnostics.lidar import lidar
from covssl.diagnostics.quality import RANKME_SAMPLES, label_free_metrics
from covssl.diagnostics.spectrum import isotropy


class Monitor:
    """Collapse indicators and label-free metrics every ``every`` steps, as a dict of floats.

    Keys: ``std_of_normalized`` (and ``std_of_normalized_healthy`` = 1/sqrt(d)),
    ``effective_rank``, ``condition_number``, ``eigenvalue_entropy``, ``rankme``, ``nesum``,
    ``stable_rank``, ``w2_uniformity``, ``alpha_req``/``alpha_req_r2`` (when
    min(N - 1, d) >= 100) of the first view, and ``lidar`` of the views (when two or more are
    given; each row of every view comes from the same image). Non-finite values (a collapsed
    run's condition number) are the floats inf and nan, never strings.

    Args:
        every: compute on steps that are multiples of ``every`` (>= 1).
        lidar_views: also compute LiDAR when several views are given.

    Examples:
        >>> monitor = Monitor(every=2)
        >>> monitor.update(1, torch.randn(64, 8)) is None
        True
        >>> metrics = monitor.update(2, torch.randn(64, 8), torch.randn(64, 8))
        >>> sorted(metrics)[:4], all(isinstance(v, float) for v in metrics.values())
        (['condition_number', 'effective_rank', 'eigenvalue_entropy', 'lidar'], True)
        >>> monitor.history[-1]["step"]
        2.0
    """

    def __init__(self, every: int = 100, lidar_views: bool = True) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected an integer >= 1, got {every!r}")
        self.every = every
        self.lidar_views = lidar_views
        self.latest: dict[str, float] = {}
        self.history: list[dict[str, float]] = []

    def due(self, step: int) -> bool:
        """Whether ``update`` computes at this step."""
        return step % self.every == 0

    def update(self, step: int, *views: torch.Tensor) -> dict[str, float] | None:
        """The metrics of ``views`` (each (B, d)) when the step is due, else None (nothing computed)."""
        if not self.due(step):
            return None
        metrics = self.compute(*views)
        self.latest = metrics
        self.history.append({"step": float(step), **metrics})
        return metrics

    def compute(self, *views: torch.Tensor) -> dict[str, float]:
        """The metrics of one or more views now, whatever the step (see the class docstring)."""
        if not views:
            raise ValueError("views: expected at least one (B, d) tensor of embeddings")
        views = tuple(distributed.gather(v.detach()) for v in views)
        z = views[0]
        metrics = {
            "std_of_normalized": std_of_normalized(z),
            "std_of_normalized_healthy": 1.0 / math.sqrt(z.shape[1]),
            **isotropy(z),
            **label_free_metrics(z[: RANKME_SAMPLES]),
        }
        if len(z) > RANKME_SAMPLES:  # the other metrics see every row
            metrics.update({k: v for k, v in label_free_metrics(z).items() if k != "rankme"})
        if self.lidar_views and len(views) >= 2:
            metrics["lidar"] = lidar(list(views))
        return {key: float(value) for key, value in metrics.items()}

"""covssl's collapse and quality metrics in a PyTorch Lightning run: a callback on :class:`Monitor`.

Needs the optional extra ``lightning`` (``pip install 'covssl[lightning]'``)::

    from covssl.lightning_callback import CovsslMonitor

    class Module(lightning.LightningModule):
        def training_step(self, batch, batch_idx):
            z1, z2 = self.embed(batch[0]), self.embed(batch[1])
            loss = self.objective(z1, z2).loss
            return {"loss": loss, "embeddings": (z1, z2)}   # the views the monitor reads

    trainer = lightning.Trainer(callbacks=[CovsslMonitor(every=100)], logger=...)

Every ``every`` optimizer steps (0, every, 2 every, ... counting from 0 like Lightning's logs) the
callback logs the :class:`~covssl.diagnostics.Monitor`
metrics of the step's embeddings (``covssl/rankme``, ``covssl/lidar``, ...) through the
Trainer's own loggers (CSV, TensorBoard, W&B, ...). Non-finite values (a collapsed run's
condition number) are logged as they are.
"""

from __future__ import annotations

from typing import Any

import torch

from covssl.diagnostics import Monitor

try:
    from lightning.pytorch import Callback
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "covssl.lightning_callback needs PyTorch Lightning, which is not installed: pip install 'covssl[lightning]'"
    ) from error


class CovsslMonitor(Callback):
    """Logs :class:`~covssl.diagnostics.Monitor` metrics every ``every`` steps of a Lightning run.

    Args:
        every: log on global steps that are multiples of this (>= 1).
        key: the entry of ``training_step``'s returned dict holding the embeddings: one (B, d)
            tensor, or a tuple/list of views (LiDAR is logged when there are two or more).
        prefix: prepended to every metric name.

    Examples:
        >>> callback = CovsslMonitor(every=50)
        >>> callback.monitor.every
        50
    """

    def __init__(self, every: int = 100, key: str = "embeddings", prefix: str = "covssl/") -> None:
        super().__init__()
        self.monitor = Monitor(every=every)
        self.key = key
        self.prefix = prefix

    def _views(self, outputs: Any) -> tuple[torch.Tensor, ...]:
        value = outputs.get(self.key) if isinstance(outputs, dict) else None
        if value is None:
            raise ValueError(
                f"CovsslMonitor: training_step must return a dict with {self.key!r} (the embeddings, a tensor "
                f"or a tuple of views), got {type(outputs).__name__}"
                + (f" with keys {sorted(outputs)}" if isinstance(outputs, dict) else "")
            )
        return tuple(value) if isinstance(value, (tuple, list)) else (value,)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step - 1  # the optimizer step this batch just made (global_step counts it)
        if not self.monitor.due(step):
            return
        metrics = self.monitor.update(step, *self._views(outputs))
        if metrics and trainer.is_global_zero:  # every rank computed them (a collective gather); one logs
            named = {self.prefix + name: value for name, value in metrics.items()}
            for logger in trainer.loggers:
                logger.log_metrics(named, step=step)

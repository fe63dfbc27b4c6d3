"""The Lightning callback in a real Trainer on the CPU: the Monitor's metrics in Lightning's CSV logger."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

lightning = pytest.importorskip("lightning")

from covssl import Objective  # noqa: E402
from covssl.lightning_callback import CovsslMonitor  # noqa: E402


class TinyModule(lightning.LightningModule):
    def __init__(self, return_embeddings: bool = True) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
        self.objective = Objective.from_spec("mse:25 + variance_hinge:25 + covariance_penalty:1")
        self.return_embeddings = return_embeddings

    def training_step(self, batch, batch_idx):
        x = batch[0]
        z1, z2 = self.net(x + 0.1 * torch.randn_like(x)), self.net(x + 0.1 * torch.randn_like(x))
        loss = self.objective(z1, z2).loss
        return {"loss": loss, "embeddings": (z1, z2)} if self.return_embeddings else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _trainer(tmp_path: Path, steps: int, callback: CovsslMonitor):
    logger = lightning.pytorch.loggers.CSVLogger(tmp_path, name="run", version=0)
    return lightning.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=logger, callbacks=[callback],
                             enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                             log_every_n_steps=1), logger


def _loader():
    data = torch.utils.data.TensorDataset(torch.randn(64, 6, generator=torch.Generator().manual_seed(0)))
    return torch.utils.data.DataLoader(data, batch_size=32)


def test_the_callback_logs_the_monitor_metrics_through_lightnings_logger(tmp_path: Path) -> None:
    torch.manual_seed(0)
    callback = CovsslMonitor(every=2)
    trainer, logger = _trainer(tmp_path, 5, callback)
    trainer.fit(TinyModule(), _loader())
    rows = list(csv.DictReader(open(Path(logger.log_dir) / "metrics.csv")))
    logged = [row for row in rows if row.get("covssl/rankme")]
    assert [int(row["step"]) for row in logged] == [0, 2, 4]
    assert [h["step"] for h in callback.monitor.history] == [0.0, 2.0, 4.0]
    last = callback.monitor.history[-1]
    for name in ("rankme", "lidar", "effective_rank", "w2_uniformity"):
        assert float(logged[-1][f"covssl/{name}"]) == pytest.approx(last[name], rel=1e-6), name
        assert math.isfinite(last[name])


def test_a_training_step_without_embeddings_is_a_clear_error(tmp_path: Path) -> None:
    trainer, _ = _trainer(tmp_path, 1, CovsslMonitor(every=1))
    with pytest.raises(ValueError, match="training_step must return a dict with 'embeddings'"):
        trainer.fit(TinyModule(return_embeddings=False), _loader())

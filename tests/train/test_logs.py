"""Run logs: a CSV whose header grows with new keys, and a resumed run's log without duplicates."""

from __future__ import annotations

import csv

from covssl.train import train
from covssl.train.logs import CSVLog


def _read(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_key_first_seen_later_widens_the_header_instead_of_being_dropped(tmp_path) -> None:
    log = CSVLog(tmp_path / "epochs.csv", "epoch")
    log.write({"epoch": 0, "loss": 1.5})
    log.write({"epoch": 1, "loss": 1.25, "knn_top1": 0.5})
    log.write({"epoch": 2, "loss": 1.0})
    rows = _read(tmp_path / "epochs.csv")
    assert [r["knn_top1"] for r in rows] == ["", "0.5", ""]
    assert [r["loss"] for r in rows] == ["1.5", "1.25", "1.0"]
    resumed = CSVLog(tmp_path / "epochs.csv", "epoch")  # a resumed run reads the widened header
    resumed.truncate_after(1)
    resumed.write({"epoch": 2, "loss": 0.75})
    assert [(r["epoch"], r["knn_top1"], r["loss"]) for r in _read(tmp_path / "epochs.csv")] == [
        ("0", "", "1.5"), ("1", "0.5", "1.25"), ("2", "", "0.75")]


def test_periodic_knn_reaches_the_epoch_log(make_config) -> None:
    """knn_every=2 over 3 epochs: the first epoch row has no kNN, the second has one."""
    result = train(make_config("vicreg", "train.epochs=3", "train.knn_every=2", "eval.baselines=false"))
    rows = _read(result.run_dir / "epochs.csv")
    assert [r["knn_top1"] != "" for r in rows] == [False, True, False]
    assert 0.0 <= float(rows[1]["knn_top1"]) <= 1.0

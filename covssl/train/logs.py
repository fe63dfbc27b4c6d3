"""Run logs: CSV always (one file per granularity), TensorBoard when it is installed."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any


class CSVLog:
    """Append rows of named numbers to a CSV file; the header grows with the keys seen.

    A row bringing a new key (an epoch with a kNN evaluation after epochs without one) rewrites
    the file atomically with the widened header; earlier rows get an empty cell there.

    Rows keyed by a counter (``step`` or ``epoch``) beyond a resumed checkpoint are dropped
    by :meth:`truncate_after`, so a resumed run's log has no duplicated rows.
    """

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.fields: list[str] | None = None
        if path.exists() and path.stat().st_size > 0:
            with open(path, newline="") as handle:
                self.fields = next(csv.reader(handle), None)

    def truncate_after(self, value: int) -> None:
        """Drop rows whose key is greater than ``value`` (the resumed checkpoint's counter)."""
        if self.fields is None:
            return
        with open(self.path, newline="") as handle:
            # a row cut short by a kill has missing fields: drop it with the rows after the checkpoint
            rows = [
                r for r in csv.DictReader(handle)
                if None not in r.values() and r[self.key] and int(float(r[self.key])) <= value
            ]
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace the file by ``rows`` under the current header; atomic: a kill leaves the old or the new log."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        elif any(key not in self.fields for key in row):
            with open(self.path, newline="") as handle:
                rows = list(csv.DictReader(handle))
            self.fields = [*self.fields, *(key for key in row if key not in self.fields)]
            self._rewrite(rows)
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, restval="")
            if new:
                writer.writeheader()
            writer.writerow(row)


class TensorBoardLog:
    """Scalars to TensorBoard when the ``tensorboard`` package is installed; otherwise nothing."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer = None
        else:
            self.writer = SummaryWriter(str(log_dir))

    def write(self, prefix: str, row: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for name, value in row.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

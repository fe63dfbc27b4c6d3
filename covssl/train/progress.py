"""A progress bar for long loops (rich), or nothing when disabled (logs, CI, non-zero ranks)."""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("training", total=total) if progress else None

    def advance_to(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step)  # type: ignore[arg-type]

    def set_total(self, total: int) -> None:
        """Change the number of steps (a time budget re-planned the epochs)."""
        if self.progress is not None:
            self.progress.update(self.task, total=total)  # type: ignore[arg-type]

    def update(self, step: int, description: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, description=description)  # type: ignore[arg-type]


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int) -> Iterator[_Bar]:
    """A bar with steps done / total, elapsed and remaining time; a no-op when disabled."""
    if not enabled:
        yield _Bar(None, total)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        yield _Bar(progress, total)

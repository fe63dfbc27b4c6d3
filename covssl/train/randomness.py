"""The run's random streams as pure functions of (seed, epoch) and (seed, step), and the stop signal.

Neither stream has state to save: a resumed run, or a rank of a distributed one, recomputes the
data order of its epoch and the augmentation generator of its step from the seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
from typing import Any, Iterator

import torch


def epoch_order(num_images: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of the training set used in ``epoch``: a pure function of (seed, epoch).

    Examples:
        >>> bool((epoch_order(10, 0, 3) == epoch_order(10, 0, 3)).all())
        True
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_images, generator=generator)


def augment_generator(seed: int, step: int) -> torch.Generator:
    """The augmentation RNG of one step: a pure function of (seed, step), the same on every rank."""
    # Hashed, because torch's CPU generator keeps only the low 32 bits of its seed: an affine seed
    # like epoch_order's would replay the data-order stream of epoch k at step k.
    digest = hashlib.blake2b(f"covssl-augment:{seed}:{step}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little"))


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the step and stops."""

    def __init__(self) -> None:
        self.raised: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, _frame: Any) -> None:
            self.raised = signum

        try:
            for s in previous:
                signal.signal(s, handler)
        except ValueError:  # not the main thread: signals cannot be caught here
            yield
            return
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

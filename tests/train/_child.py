"""A training process for the crash tests, run as ``python _child.py MODE STEP covssl-train-args...``.

MODE says how the process dies, deterministically and through the operating system:

* ``plain``: nothing injected (the test kills it from outside with SIGKILL at a random step);
* ``sigterm``: the process sends itself SIGTERM during step STEP (1-based), as a scheduler
  or ``kill`` would; the loop must finish the step, checkpoint mid-epoch and exit;
* ``sigkill-in-save``: SIGKILL while checkpoint STEP is being written, after its temporary
  file and its sidecar are on disk but before the checkpoint is renamed into place.
"""

from __future__ import annotations

import os
import signal
import sys

import torch

torch.set_num_threads(1)  # the same arithmetic as the single-threaded reference run in the test


def main() -> None:
    mode, step, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if mode == "sigterm":
        from covssl.train import epochs

        train_step, calls = epochs.train_step, [0]

        def signal_then_step(*a: object, **k: object) -> object:
            calls[0] += 1  # the run's train_step: the seam every step goes through
            if calls[0] == step:
                os.kill(os.getpid(), signal.SIGTERM)
            return train_step(*a, **k)

        epochs.train_step = signal_then_step
    elif mode == "sigkill-in-save":
        replace = os.replace
        target = f"checkpoint-{step:08d}.pt"

        def replace_or_die(src: str, dst: str) -> None:
            if os.path.basename(dst) == target:
                os.kill(os.getpid(), signal.SIGKILL)
            replace(src, dst)

        os.replace = replace_or_die  # type: ignore[assignment]
    elif mode != "plain":
        raise SystemExit(f"unknown mode {mode!r}")
    from covssl.cli import app

    app(["train", *args], prog_name="covssl")


if __name__ == "__main__":
    main()

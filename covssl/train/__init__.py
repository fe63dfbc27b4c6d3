"""Training: the loop, optimizers and schedules, checkpoints, logs."""

from covssl.train.loop import NonFiniteLossError, TrainResult, train

__all__ = ["NonFiniteLossError", "TrainResult", "train"]

"""Evaluation on frozen features: weighted kNN and the linear probe."""

from covssl.evaluate.features import encode, raw_pixels
from covssl.evaluate.knn import knn_accuracy, knn_predict
from covssl.evaluate.linear import linear_probe_accuracy

__all__ = ["encode", "knn_accuracy", "knn_predict", "linear_probe_accuracy", "raw_pixels"]

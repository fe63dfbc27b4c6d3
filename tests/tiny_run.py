"""The one tiny run every training test starts from: 64 digits, a small ConvNet, 4 steps an epoch.

About 20 ms a step on one CPU thread. Tests add ``train.epochs``, ``train.out_dir`` and their own
overrides after these.
"""

TINY = [
    "data.max_train_images=64",
    "data.max_eval_images=64",
    "model.backbone=small_convnet",
    "model.width=0.25",
    "model.projector_hidden=[64]",
    "model.projector_out=32",
    "train.batch_size=16",
    "train.log_every=1",
    "train.progress=false",
    "eval.knn_k=10",
]
STEPS_PER_EPOCH = 4  # 64 images / batch 16


def method_overrides(method: str) -> list[str]:
    """What a method needs on top of TINY: a predictor, or (W-MSE) a whitening window of the batch."""
    if method in ("simsiam", "byol"):
        return ["model.predictor_hidden=16"]  # the objective compares predictions with targets
    if method == "w_mse":
        return ["method.objective=wmse(w_size=16):1", "model.projector_out=8"]  # 16 rows > d = 8
    return []

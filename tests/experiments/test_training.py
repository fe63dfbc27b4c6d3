"""The experiments' shared tiny training loop: probing leaves the model unchanged; runs are reproducible."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from covssl.experiments import _training as tiny
from covssl.objectives import Objective

SETUP = tiny.TinySetup(width=0.25, hidden=16, dim=8, predictor_hidden=4, batch=16, steps=3, probe_every=2,
                       probe_size=32, knn_bank=64, knn_k=5)


def test_frozen_batchnorm_keeps_running_statistics_and_mode() -> None:
    model = tiny.build_tiny_model(SETUP, Objective.from_spec("mse:1"))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    feats, z = tiny.probe(model, torch.randn(10, 3, 16, 16))
    assert feats.shape == (10, model.backbone.out_dim) and z.shape == (10, SETUP.dim)
    for key, value in model.state_dict().items():
        if "num_batches_tracked" not in key:
            assert torch.equal(value, before[key]), key
    assert not model.training and all(not m.training for m in model.modules())
    # train mode: each probe normalizes with its own batch statistics, not the running ones
    images = torch.randn(10, 3, 16, 16)
    with torch.no_grad():
        eval_z = model.projector(model.backbone(images))
    assert not torch.allclose(tiny.probe(model, images)[1], eval_z, atol=1e-3)


def test_predictor_choice() -> None:
    assert tiny.build_tiny_model(SETUP, Objective.from_spec("negative_cosine:1")).predictor is not None
    assert tiny.build_tiny_model(SETUP, Objective.from_spec("mse:1")).predictor is None
    identity = tiny.build_tiny_model(SETUP, Objective.from_spec("negative_cosine:1"), nn.Identity())
    assert isinstance(identity.predictor, nn.Identity)


def test_same_setup_same_run() -> None:
    data = tiny.prepare_data(SETUP)
    objective = "mse:1 + variance_hinge:1"
    first, second = (tiny.train_and_probe(tiny.build_tiny_model(SETUP, Objective.from_spec(objective)), data, SETUP)
                     for _ in range(2))
    assert [h["step"] for h in first["history"]] == [0.0, 2.0, 3.0]
    for a, b in zip(first["history"], second["history"]):
        assert a["std_of_normalized"] == pytest.approx(b["std_of_normalized"], rel=1e-5)
    assert 0.0 <= first["final"]["knn_top1"] <= 1.0


def test_bad_optimizer_and_missing_cifar_root() -> None:
    model = tiny.build_tiny_model(SETUP, Objective.from_spec("mse:1"))
    with pytest.raises(ValueError, match="optimizer: expected 'sgd' or 'adamw', got 'lamb'"):
        tiny.make_optimizer(model, tiny.TinySetup(optimizer="lamb"))
    with pytest.raises(ValueError, match="data_root"):
        tiny.load_images("cifar10", None, "train", 16)


def test_threads_default_to_the_free_cores() -> None:
    import os

    before = torch.get_num_threads()
    try:
        count = tiny.torch_threads(0)
        assert 1 <= count <= (os.cpu_count() or 1) and torch.get_num_threads() == count
        assert tiny.torch_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)

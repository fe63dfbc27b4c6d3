"""End-to-end training: every method trains, logs its terms, checkpoints and resumes exactly."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from covssl.methods import list_methods
from covssl.train import NonFiniteLossError, train
from covssl.train.checkpoint import list_checkpoints, load_latest


@pytest.mark.parametrize("method", list_methods())
def test_every_method_trains_a_few_steps_with_finite_loss(make_config, method: str) -> None:
    config = make_config(method, "train.max_steps=3")
    result = train(config)
    assert result.step == 3
    with open(result.run_dir / "steps.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for row in rows:
        assert math.isfinite(float(row["loss"]))
    # every named term of the objective is logged
    from covssl.methods.model import build_model

    term_names = [t.name for t in build_model(config).objective.term_specs]
    assert set(term_names) <= set(rows[0])
    assert set(result.knn) == {"trained", "random_init", "raw_pixels"}
    assert json.loads((result.run_dir / "results.json").read_text())["step"] == 3


def _weights(run_dir) -> dict[str, torch.Tensor]:
    state, _ = load_latest(run_dir)
    return state["model"]


@pytest.mark.parametrize("method", ["vicreg", "visreg", "tico"])  # visreg, tico: state in the objective
def test_resume_is_bit_exact(tmp_path, make_config, method: str) -> None:
    straight = make_config(method, f"train.out_dir={tmp_path / 'straight'}")
    train(straight)  # 2 epochs x 4 steps
    interrupted = make_config(method, f"train.out_dir={tmp_path / 'resumed'}", "train.max_steps=3")
    train(interrupted)  # stops mid-epoch at step 3
    resumed = make_config(method, f"train.out_dir={tmp_path / 'resumed'}")
    result = train(resumed, resume=True)
    assert result.step == 8
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with open(tmp_path / "resumed" / "steps.csv", newline="") as handle:
        steps = [int(r["step"]) for r in csv.DictReader(handle)]
    assert steps == list(range(1, 9))  # no duplicated or missing rows after the resume


def test_a_run_folder_is_not_overwritten_by_accident(make_config) -> None:
    config = make_config("vicreg", "train.max_steps=1")
    train(config)
    with pytest.raises(ValueError, match="already holds a run"):
        train(config)
    train(config, overwrite=True)
    assert len(list_checkpoints(config_dir := __import__("pathlib").Path(config.train.out_dir))) >= 1
    assert (config_dir / "meta.json").exists()


def test_checkpoints_keep_only_the_last_k(make_config) -> None:
    config = make_config("vicreg", "train.keep_checkpoints=1", "train.epochs=3")
    result = train(config)
    assert len(list_checkpoints(result.run_dir)) == 1


def test_nonfinite_loss_stops_and_names_the_term(make_config, monkeypatch) -> None:
    from covssl.objectives import terms

    original = terms.TERMS["covariance_penalty"]
    monkeypatch.setitem(
        terms.TERMS,
        "covariance_penalty",
        type(original)(**{**original.__dict__, "fn": lambda z, **_: z.sum() * float("nan")}),
    )
    config = make_config("vicreg", "train.max_steps=2")
    with pytest.raises(NonFiniteLossError, match="covariance_penalty"):
        train(config)


def test_a_flat_image_folder_trains_with_a_held_out_split(tmp_path, make_config) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / "flat" / label).mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "flat" / label / f"{i}.png")
    config = make_config(
        "vicreg", "data.dataset=imagefolder", f"data.root={tmp_path / 'flat'}", f"data.cache_dir={tmp_path / 'cache'}",
        "data.max_train_images=null", "data.max_eval_images=null", "train.max_steps=2", "augment.image_size=16",
    )
    result = train(config)
    assert result.step == 2 and 0 <= result.knn["trained"] <= 1


@pytest.mark.parametrize("method", ["vicreg", "coding_rate"])
def test_bf16_autocast_trains_with_the_objective_in_fp32(make_config, method: str, monkeypatch) -> None:
    """The mixed-precision path (bf16 autocast; on CPU here, on CUDA in real runs): the network runs in
    bf16, the objective (log-det included) receives and returns float32."""
    from covssl.objectives import Objective

    seen: list[torch.dtype] = []
    inputs: list[torch.dtype] = []
    original = Objective.over_views

    def spy(self, views, predictions=None, num_global=None, targets=None):
        inputs.append(views[0].dtype)
        out = original(self, views, predictions, num_global, targets)
        seen.append(out.loss.dtype)
        return out

    monkeypatch.setattr(Objective, "over_views", spy)
    result = train(make_config(method, "train.max_steps=2", "train.precision=bf16"))
    assert result.step == 2
    assert seen and all(dtype == torch.float32 for dtype in seen)
    assert inputs and all(dtype == torch.bfloat16 for dtype in inputs)  # the network really ran in bf16


def test_baselines_can_be_skipped(make_config) -> None:
    result = train(make_config("vicreg", "train.max_steps=1", "eval.baselines=false"))
    assert set(result.knn) == {"trained"}


def test_channels_last_trains_like_the_default_layout_and_exports(tmp_path, make_config, monkeypatch) -> None:
    """NHWC is a layout, not a model change: same weights up to convolution rounding; the views fed to
    the network really are channels_last; checkpoints resume and the backbone exports (safetensors
    needs contiguous tensors)."""
    from covssl.export import export_backbone, load_backbone
    from covssl.methods.model import SSLModel
    from covssl.train.restore import load_run

    layouts: list[bool] = []
    original = SSLModel.forward

    def spy(self, view1, view2):
        layouts.append(view1.is_contiguous(memory_format=torch.channels_last) and view1.stride(1) == 1)
        return original(self, view1, view2)

    monkeypatch.setattr(SSLModel, "forward", spy)
    # one step: LARS and BN amplify rounding differences (1e-3 on BN weights after three steps)
    common = ("model.backbone=resnet18", "model.width=0.125", "train.max_steps=1", "eval.baselines=false")
    train(make_config("vicreg", *common, f"train.out_dir={tmp_path / 'nchw'}"))
    assert layouts and not any(layouts)
    layouts.clear()
    train(make_config("vicreg", *common, "train.channels_last=true", f"train.out_dir={tmp_path / 'nhwc'}"))
    assert layouts and all(layouts)
    a, b = _weights(tmp_path / "nchw"), _weights(tmp_path / "nhwc")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=2e-4, msg=key)  # measured: 3e-5
    result = train(
        make_config("vicreg", *common[:-2], "train.max_steps=3", "train.channels_last=true",
                    f"train.out_dir={tmp_path / 'nhwc'}"),
        resume=True,
    )
    assert result.step == 3
    config, model, _ = load_run(tmp_path / "nhwc")
    nhwc_backbone = model.backbone.to(memory_format=torch.channels_last)
    out = export_backbone(nhwc_backbone, config.model.backbone, {"width": 0.125}, tmp_path / "exported")
    images = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(load_backbone(out)(images), model.backbone.eval()(images))


def test_eval_image_size_defaults_to_the_crop_size(make_config) -> None:
    from covssl.train.evaluation import eval_transform

    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert eval_transform(make_config("vicreg", "augment.image_size=24"))(images).shape[-1] == 24
    larger = make_config("vicreg", "augment.image_size=24", "eval.image_size=32")
    assert eval_transform(larger)(images).shape[-1] == 32


@pytest.mark.parametrize("native, warned", [(False, True), (True, False), (None, False)])
def test_bf16_on_a_cpu_without_native_bf16_warns(make_config, monkeypatch, caplog, native, warned) -> None:
    import covssl.train.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level("WARNING", logger="covssl.train.precision"):
        train(make_config("vicreg", "train.max_steps=1", "train.precision=bf16", "eval.baselines=false"))
    assert ("emulated" in caplog.text) is warned


def test_the_final_knn_and_probe_share_one_encoding(make_config) -> None:
    from covssl.evaluate.linear import linear_probe_accuracy
    from covssl.methods.model import build_model
    from covssl.train.data import load_splits
    from covssl.train.evaluation import KnnEvaluator, eval_transform

    config = make_config("vicreg")
    splits = load_splits(config.data, config.train.seed)
    evaluator = KnnEvaluator(splits, eval_transform(config), torch.device("cpu"), config.eval)
    backbone = build_model(config).backbone
    seen = []
    backbone.register_forward_hook(lambda _module, inputs, _output: seen.append(inputs[0].shape[0]))
    knn, probe = evaluator.knn_and_probe(backbone, 5)
    encoded = sum(seen)
    assert encoded == len(splits.bank.images) + len(splits.test.images)  # each image once, not twice
    assert knn == evaluator.knn(backbone)
    bank, queries = evaluator._features(backbone)
    expected = linear_probe_accuracy(
        bank, evaluator.bank_labels, queries, evaluator.query_labels, splits.num_classes, epochs=5
    )
    assert probe == pytest.approx(expected, abs=0)
    assert evaluator.knn_and_probe(backbone, None)[1] is None


def test_a_multi_crop_run_trains_and_resumes_exactly(tmp_path, make_config) -> None:
    crops = ["augment.local_crops=4", "augment.local_size=16", "method.objective=mse[to_global]:25 + variance_hinge:25"]
    straight = train(make_config("vicreg", *crops, f"train.out_dir={tmp_path / 'straight'}"))
    assert straight.step == 8
    train(make_config("vicreg", *crops, f"train.out_dir={tmp_path / 'resumed'}", "train.max_steps=3"))
    resumed = train(make_config("vicreg", *crops, f"train.out_dir={tmp_path / 'resumed'}"), resume=True)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert resumed.step == 8 and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", list_methods())
def test_every_method_trains_with_the_vit(make_config, method: str) -> None:
    vit = ["model.backbone=vit_tiny", "model.width=0.125", "augment.image_size=16", "eval.image_size=16"]
    result = train(make_config(method, "train.max_steps=2", *vit))
    assert result.step == 2
    with open(result.run_dir / "steps.csv", newline="") as handle:
        assert all(math.isfinite(float(row["loss"])) for row in csv.DictReader(handle))


def test_emp_ssl_trains_and_scores_a_bag_of_patches(make_config) -> None:
    result = train(make_config("emp_ssl", "train.max_steps=2", "augment.global_crops=4", "eval.patches=3"))
    assert result.step == 2 and 0.0 <= result.knn["trained"] <= 1.0

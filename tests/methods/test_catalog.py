"""Tests of covssl/methods/registry.py and catalog.py: each method is one complete entry."""

from __future__ import annotations

import pytest
import torch

from covssl.augment import list_augment_presets
from covssl.methods import METHODS, MethodDef, get_method, list_methods, method_defaults, preset, register_method
from covssl.objectives.objective import check_spec

# The papers' CIFAR heads, written out independently of the catalog (solo-learn's where the
# paper has none): method -> (projector hidden dims, d, output BN, predictor width or 0).
PAPER_HEADS = {
    "vicreg": ([2048, 2048], 2048, False, 0),
    "barlow_twins": ([2048, 2048], 2048, False, 0),
    "simclr": ([2048], 128, False, 0),
    "simsiam": ([2048], 2048, True, 512),
    "byol": ([4096], 256, False, 4096),
    "corinfomax": ([2048, 2048], 64, False, 0),
    "coding_rate": ([2048], 128, False, 0),
}
PAPER_VIEWS = {"simclr": "simclr", "simsiam": "simsiam"}  # every other method uses BYOL's views


@pytest.mark.parametrize("name", list_methods())
def test_every_method_is_complete(name: str) -> None:
    method = get_method(name)
    assert method.views in list_augment_presets()
    definitions = check_spec(method.objective)  # parses, every term and parameter exists
    needs_predictor = any(d.kind == "predict" for d in definitions)
    assert (method.model.get("predictor_hidden", 0) > 0) == needs_predictor
    assert method.paper.startswith(method.paper.split()[0]) and "arxiv.org" in method.paper
    assert method.optim["optimizer"] in ("sgd", "lars", "adamw") and method.optim["lr"] > 0


@pytest.mark.parametrize("name", sorted(PAPER_HEADS))
def test_heads_and_views_are_the_papers(name: str) -> None:
    method = get_method(name)
    hidden, out_dim, out_bn, predictor = PAPER_HEADS[name]
    assert method.model["projector_hidden"] == hidden and method.model["projector_out"] == out_dim
    assert method.model["projector_last_bn"] == out_bn
    assert method.model.get("predictor_hidden", 0) == predictor
    assert method.views == PAPER_VIEWS.get(name, "byol")


def test_only_byol_and_simdino_have_an_ema_target() -> None:
    assert [n for n in list_methods() if get_method(n).model.get("ema_momentum")] == ["byol", "simdino"]


@pytest.mark.parametrize("name", list_methods())
def test_preset_builds_the_methods_objective(name: str) -> None:
    objective = preset(name, dim=8)
    z1, z2 = torch.randn(128, 8, dtype=torch.float64), torch.randn(128, 8, dtype=torch.float64)  # W-MSE: 128 rows
    if objective.needs_targets:  # an EMA teacher's global views
        out = objective.over_views([z1, z2], num_global=2, targets=[z1 + 0.1, z2 - 0.1])
    else:
        out = objective(z1, z2, *((z1 + 0.1, z2 - 0.1) if objective.needs_predictions else ()))
    assert torch.isfinite(out.loss)


def test_method_defaults_carry_the_entry() -> None:
    layer = method_defaults("simsiam", "cifar10")
    assert layer["model"] == get_method("simsiam").model and layer["model"] is not get_method("simsiam").model
    assert layer["augment"]["view1"]["crop_scale"] == [0.2, 1.0]  # SimSiam's recipe
    assert method_defaults("simsiam", "digits")["augment"]["view1"]["hflip_prob"] == 0.0


def test_unknown_and_duplicate_names() -> None:
    with pytest.raises(ValueError, match="method.name: unknown method 'dino'; choose one of: barlow_twins"):
        preset("dino")
    with pytest.raises(ValueError, match="already"):
        register_method(MethodDef("vicreg", "mse", "again", "nobody", views="byol"))
    assert "vicreg" in METHODS


def _views(batch: int = 64, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    return z1, z1 + 0.3 * torch.randn(batch, dim, generator=g, dtype=torch.float64)


def test_vibcreg_composition_is_the_official_loss() -> None:
    from covssl.objectives import vibcreg_loss

    z1, z2 = _views()
    expected = vibcreg_loss(z1, z2)["loss"]  # 25 mse + 25 (v1 + v2) + 200 (r1 + r2)
    torch.testing.assert_close(preset("vibcreg")(z1, z2).loss, expected, rtol=1e-12, atol=1e-12)


def test_i_vne_composition_is_the_official_loss_plus_a_constant() -> None:
    from covssl.objectives import i_vne_loss

    z1, z2 = _views()
    expected = i_vne_loss(z1, z2)["loss"] + 4.16  # cosine is 1 - cos: the same gradient
    torch.testing.assert_close(preset("i_vne")(z1, z2).loss, expected, rtol=1e-12, atol=1e-12)


def test_visreg_composition_is_lejepa_invariance_plus_the_regularizer() -> None:
    from covssl.objectives import visreg

    z1, z2 = _views()
    objective = preset("visreg", dim=16)
    directions = objective.stateful["visreg"].directions(dtype=torch.float64)  # step 0's slices
    centre = (z1 + z2) / 2
    invariance = ((z1 - centre).square().mean() + (z2 - centre).square().mean()) / 2  # LeJEPA's
    regularizer = (visreg(z1, directions)["loss"] + visreg(z2, directions)["loss"]) / 2
    expected = 0.4 * invariance + 0.6 * regularizer  # lambda = 0.6
    torch.testing.assert_close(objective(z1, z2).loss, expected, rtol=1e-12, atol=1e-12)


def test_a_vit_gets_its_position_grid_at_the_global_crop_size() -> None:
    from covssl.methods.model import backbone_kwargs, build_model
    from covssl.resolve import load_config

    config = load_config(None, ["model.backbone=vit_tiny", "model.width=0.125", "augment.image_size=16"])
    assert backbone_kwargs(config) == {"width": 0.125, "image_size": 16}
    assert build_model(config).backbone.pos_embed.shape[1] == 1 + (16 // 4) ** 2  # CLS + a 4 x 4 grid
    assert "image_size" not in backbone_kwargs(load_config(None, ["model.backbone=resnet18"]))

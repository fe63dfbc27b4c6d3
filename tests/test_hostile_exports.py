"""Hostile backbone.json files: a clear ValueError naming the file, before building the model."""

import json

import pytest

from covssl.export import export_backbone, load_backbone
from covssl.models import create_backbone


@pytest.fixture
def exported(tmp_path):
    kwargs = {"width": 0.125, "cifar_stem": True}
    return export_backbone(create_backbone("resnet18", **kwargs), "resnet18", kwargs, tmp_path / "out")


@pytest.mark.parametrize("meta, fragment", [
    ([1, 2], "expected an object with 'backbone'"),
    ({"backbone": "resnet18", "kwargs": {"width": 1e6, "cifar_stem": True}}, "is not a width"),
    ({"backbone": "resnet18", "kwargs": {"width": 0.25, "cifar_stem": True}}, "describes another model"),
])
def test_bad_meta(exported, meta, fragment):
    (exported / "backbone.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=fragment) as info:
        load_backbone(exported)
    assert "backbone.json" in str(info.value) and "export the run again" in str(info.value)


def test_garbage_meta(exported):
    (exported / "backbone.json").write_bytes(b"\xff\x00garbage")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_backbone(exported)


def test_valid_export_loads(exported):
    assert load_backbone(exported).out_dim > 0

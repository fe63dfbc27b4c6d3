"""``import covssl`` gives the objective, presets, diagnostics and the building blocks, loaded on use."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import covssl


@pytest.mark.parametrize("name", [n for n in covssl.__all__ if n != "__version__"])
def test_every_advertised_name_resolves(name: str) -> None:
    assert getattr(covssl, name) is not None
    assert name in dir(covssl)


def test_the_docstring_example_composes_a_run() -> None:
    objective = covssl.Objective.from_spec("mse:25 + variance_hinge:25 + covariance_penalty:1")
    augment = covssl.TwoViewAugment(covssl.AugmentConfig(image_size=16))
    head = covssl.Projector(12, [32], 8)
    v1, v2 = augment(torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8))
    z1, z2 = head(v1.flatten(1)[:, :12]), head(v2.flatten(1)[:, :12])
    out = objective(z1, z2)
    out.loss.backward()
    assert covssl.diagnostics.Monitor(every=1).update(0, z1, z2)["lidar"] > 0
    assert isinstance(covssl.preset("barlow_twins"), covssl.Objective)


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        covssl.nothing  # noqa: B018


def test_import_covssl_alone_does_not_import_torch() -> None:
    code = "import sys, covssl; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"

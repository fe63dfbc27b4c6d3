"""Loading embeddings files, encoding runs, and the collapse verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from covssl.experiments.embeddings import is_run, load_embeddings_file


def test_pt_tensor_dict_and_npy(tmp_path) -> None:
    z = torch.randn(10, 4)
    torch.save(z, tmp_path / "z.pt")
    z1, z2 = load_embeddings_file(tmp_path / "z.pt")
    assert torch.equal(z1, z) and z2 is None
    torch.save({"z1": z, "z2": 2 * z}, tmp_path / "pair.pth")
    z1, z2 = load_embeddings_file(tmp_path / "pair.pth")
    assert torch.equal(z2, 2 * z)
    np.save(tmp_path / "z.npy", np.arange(12).reshape(6, 2))  # integers become float64
    z1, _ = load_embeddings_file(tmp_path / "z.npy")
    assert z1.dtype == torch.float64 and z1.shape == (6, 2)


class _Payload:
    def __reduce__(self):  # what a malicious pickle would do on load
        return (print, ("pwned",))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: torch.save(torch.randn(5), p / "e.pt"), "embeddings: expected a 2-D tensor"),
        (lambda p: torch.save(torch.randn(1, 3), p / "e.pt"), "at least 2 rows"),
        (lambda p: torch.save(torch.full((3, 2), float("nan")), p / "e.pt"), "finite"),
        (lambda p: torch.save({"a": torch.randn(3, 2)}, p / "e.pt"), "key 'z1'"),
        (lambda p: torch.save({"z1": torch.randn(3, 2), "z2": torch.randn(4, 2)}, p / "e.pt"),
         "z2: expected the same shape"),
        (lambda p: torch.save({"z1": _Payload()}, p / "e.pt"), "cannot read"),
        (lambda p: (p / "e.pt").write_bytes(b"not a zip"), "cannot read"),
        (lambda p: np.save(p / "e.npy", np.array(["a", "b"])), "numeric array"),
        (lambda p: np.save(p / "e.npy", np.array([{"a": 1}], dtype=object)), "cannot read"),
        (lambda p: (p / "e.csv").write_text("1,2\n"), "expected a .pt, .pth, .npy file"),
    ],
)
def test_bad_files_are_value_errors(tmp_path, capsys, make, message) -> None:
    make(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(ValueError, match=message):
        load_embeddings_file(path)
    assert "pwned" not in capsys.readouterr().out


def test_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_embeddings_file(tmp_path / "nope.pt")


def test_is_run(tmp_path) -> None:
    assert is_run(tmp_path)
    assert is_run(tmp_path / "checkpoint-00000012.pt")
    assert not is_run(tmp_path / "embeddings.pt")

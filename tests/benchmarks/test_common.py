"""The benchmark stamps: the machine line and a per-run peak memory that really resets."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from _common import (
    CIFAR_COPY, cifar_benchmark_parser, data_overrides, describe_machine, peak_memory_mb,
    reset_peak_memory,
)


def test_machine_line_names_the_architecture_and_cpu_count() -> None:
    import os
    import platform

    line = describe_machine()
    assert platform.machine() in line and f"{os.cpu_count()} CPUs" in line


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reset uses /proc/self/clear_refs")
def test_peak_memory_is_per_run_after_a_reset() -> None:
    big = np.ones(400 * 2**20 // 8)  # 400 MiB, touched
    high = peak_memory_mb()
    del big
    reset_peak_memory()
    after = peak_memory_mb()
    assert high - after > 300, (high, after)  # the 400 MiB of the first "run" is no longer counted


def test_data_overrides_skip_the_root_for_digits() -> None:
    assert data_overrides("digits", "/x", None, None) == []
    assert data_overrides("cifar10", "/x", 10, 5) == ["data.root=/x", "data.max_train_images=10", "data.max_eval_images=5"]


def test_cifar_benchmark_parser_shares_the_common_options(tmp_path) -> None:
    parser = cifar_benchmark_parser(None, "quick", out=tmp_path / "a.csv", runs=tmp_path / "runs", images=100)
    parser.add_argument("--epochs", type=int, default=3)  # a script's own option goes after the shared ones
    args = parser.parse_args([])
    assert (args.quick, args.methods, args.root, args.images, args.eval_images) == (False, None, str(CIFAR_COPY), 100, None)
    assert (args.set, args.out, args.runs, args.epochs) == ([], tmp_path / "a.csv", tmp_path / "runs", 3)
    args = parser.parse_args(["--quick", "--methods", "vicreg", "simclr", "--set", "optim.lr=0.1", "--eval-images", "7"])
    assert (args.quick, args.methods, args.set, args.eval_images) == (True, ["vicreg", "simclr"], ["optim.lr=0.1"], 7)
    assert CIFAR_COPY.name == "cifar10-jpeg.tar.gz" and CIFAR_COPY.parent.parent.name == "shared"


def test_write_rows_replaces_the_file_atomically(tmp_path, monkeypatch) -> None:
    import os

    from _common import write_rows

    path = tmp_path / "sub" / "rows.csv"
    write_rows(path, [{"a": 1, "b": 2}])
    assert path.read_text().splitlines() == ["a,b", "1,2"]

    def crash(*_args) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_rows(path, [{"a": 3, "b": 4}])
    assert path.read_text().splitlines() == ["a,b", "1,2"]  # the old rows survive a failed write


def test_method_overrides_fit_w_mse_s_window_to_the_protocol() -> None:
    from _common import method_overrides

    assert method_overrides("vicreg", 256, 2048, quick=False) == []
    assert method_overrides("byol", 16, 32, quick=True) == ["model.predictor_hidden=16"]
    assert method_overrides("w_mse", 256, 64, quick=False) == ["method.objective=wmse(w_size=128):1"]
    assert method_overrides("w_mse", 32, 32, quick=True) == [
        "method.objective=wmse(w_size=32):1", "model.projector_out=16",
    ]

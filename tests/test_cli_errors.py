"""Every CLI failure is one ``error:`` line on stderr and exit code 2, however long the message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LONG = "a" * 150  # longer than any terminal: the line must not wrap


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "--resume", "train.out_dir={tmp}/" + LONG], "--resume: nothing to resume"),
        (["train", "--resume", "--overwrite", "train.out_dir={tmp}/x"], "--resume and --overwrite contradict"),
        (["train", "optim.lr=-1", "train.out_dir={tmp}/y"], "optim.lr"),
        (["compare", "{tmp}/" + LONG, "{tmp}/other", "--out", "{tmp}/o"], "no such run folder"),
        (["diagnose", "{tmp}/" + LONG, "--out", "{tmp}/o"], "no such file or folder"),
    ],
    ids=["resume-nothing", "resume-overwrite", "bad-value", "compare-missing", "diagnose-missing"],
)
def test_one_error_line_on_stderr(tmp_path: Path, args: list[str], fragment: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "covssl", *argv], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "error:" not in proc.stdout


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: [0.1\ntrain: {}\n")
    proc = subprocess.run([sys.executable, "-m", "covssl", "train", "-c", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith(f"error: {bad}:3:6: YAML syntax error")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_python_tag_in_a_config_is_refused_and_never_runs(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    marker = tmp_path / "ran"
    evil.write_text(f'optim: !!python/object/apply:os.system ["touch {marker}"]\n')
    proc = subprocess.run([sys.executable, "-m", "covssl", "train", "-c", str(evil)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and f"{evil}:1:8: YAML tag" in proc.stderr and "is not allowed" in proc.stderr
    assert not marker.exists()


def test_export_refuses_to_replace_a_backbone_or_write_over_a_file(tmp_path: Path) -> None:
    from covssl.export import export_backbone, load_backbone
    from covssl.models import create_backbone

    backbone = create_backbone("small_convnet", width=0.25)
    export_backbone(backbone, "small_convnet", {"width": 0.25}, tmp_path / "out")
    with pytest.raises(ValueError, match="already holds an exported backbone; pass --overwrite"):
        export_backbone(backbone, "small_convnet", {"width": 0.25}, tmp_path / "out")
    export_backbone(backbone, "small_convnet", {"width": 0.25}, tmp_path / "out", overwrite=True)
    assert load_backbone(tmp_path / "out") is not None
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        export_backbone(backbone, "small_convnet", {"width": 0.25}, tmp_path / "file")

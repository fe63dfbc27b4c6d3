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

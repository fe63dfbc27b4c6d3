"""``python -m covssl`` (and ``torchrun ... -m covssl train``) runs the CLI."""

from covssl.cli import app

app()

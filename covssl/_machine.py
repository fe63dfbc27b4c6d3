"""One line describing this machine, stamped on every benchmark row."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe_machine() -> str:
    """CPU model, architecture and CPU count, e.g. 'AMD EPYC 7B13 (x86_64, 2 CPUs)'.

    ``platform.processor()`` is empty on most Linux systems, so the model comes from /proc/cpuinfo.
    """
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or 'unknown CPU'} ({platform.machine()}, {os.cpu_count()} CPUs)"

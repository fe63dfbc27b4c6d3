"""What the CPU can do fast: whether bf16 matrix products run natively."""

from __future__ import annotations

from pathlib import Path


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX), None if unknown (not Linux).

    Without them oneDNN emulates bf16 and an autocast run is slower than fp32.
    """
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        return None
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))

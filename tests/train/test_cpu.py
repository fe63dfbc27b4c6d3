"""Whether the CPU runs bf16 natively, read from its flags."""

from __future__ import annotations

from covssl.train.cpu import cpu_has_native_bf16


def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch, tmp_path) -> None:
    import covssl.train.cpu as machine

    real_path = machine.Path

    def fake_cpuinfo(flags: str):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        return lambda p: info if p == "/proc/cpuinfo" else real_path(p)

    monkeypatch.setattr(machine, "Path", fake_cpuinfo("fpu avx2 avx512f avx512_bf16"))
    assert cpu_has_native_bf16() is True
    monkeypatch.setattr(machine, "Path", fake_cpuinfo("fpu avx2 amx_bf16 amx_tile"))
    assert cpu_has_native_bf16() is True
    monkeypatch.setattr(machine, "Path", fake_cpuinfo("fpu avx2 avx512f"))
    assert cpu_has_native_bf16() is False
    monkeypatch.setattr(machine, "Path", lambda p: tmp_path / "missing")
    assert cpu_has_native_bf16() is None

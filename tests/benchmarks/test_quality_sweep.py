"""benchmarks/quality_sweep.py: its runs are valid configurations of one method that differ."""

from __future__ import annotations


def test_the_sweep_is_one_method_in_nine_valid_distinct_configurations(load_benchmark) -> None:
    from covssl.resolve import load_config

    script = load_benchmark("quality_sweep")
    runs = script.sweep()
    assert len(runs) >= 8 and "collapse" in runs
    configs = {name: load_config(None, [*script.COMMON, *overrides, "data.root=/nowhere"])
               for name, overrides in runs.items()}
    assert {c.method.name for c in configs.values()} == {"vicreg"}
    described = {(c.method.objective, c.optim.lr, c.model.projector_out) for c in configs.values()}
    assert len(described) == len(runs)  # no two runs alike
    assert configs["collapse"].method.objective == "mse:25"  # no variance or covariance term

"""Hostile configuration files and overrides: one clear ValueError, nothing executed, no secret echoed."""

from pathlib import Path

import pytest

from covssl.config import from_yaml, load_saved_config
from covssl.resolve import load_config


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_python_tag_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path, "c.yaml", f"optim:\n  lr: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match=r"c\.yaml:2:7: YAML tag .*python/object/apply.*not allowed"):
        load_config(path)
    assert not marker.exists()


def test_billion_laughs_is_refused(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]"
                                                     for i in range(8)]
    path = _write(tmp_path, "laughs.yaml", "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"laughs\.yaml:1:4: YAML anchors and aliases"):
        load_config(path)


def test_syntax_error_reads_file_line_column(tmp_path):
    path = _write(tmp_path, "bad.yaml", "optim:\n  lr: [0.1\ntrain: {\n")
    with pytest.raises(ValueError, match=r"bad\.yaml:3:6: YAML syntax error"):
        load_config(path)


@pytest.mark.parametrize("content, fragment", [
    (b"\xff\xfe\x00garbage", "not a UTF-8 text file"),
    ("- 1\n- 2\n", "expected a mapping of sections"),
    ("#" * (1 << 20) + "\n", "more than a configuration can be"),
])
def test_garbage_list_and_huge_files(tmp_path, content, fragment):
    path = _write(tmp_path, "c.yaml", content)
    with pytest.raises(ValueError, match=fragment) as info:
        load_config(path)
    assert "c.yaml" in str(info.value)


@pytest.mark.parametrize("override", ["optim.lr=${foo:bar}", "optim.lr=${oc.env:COVSSL_TEST_SECRET}",
                                      "train.out_dir=${oc.env:COVSSL_TEST_SECRET}"])
def test_resolvers_are_refused_without_echoing_the_secret(monkeypatch, override):
    monkeypatch.setenv("COVSSL_TEST_SECRET", "hunter2-do-not-print")
    with pytest.raises(ValueError, match="resolver interpolations") as info:
        load_config(None, [override])
    assert "hunter2" not in str(info.value)


def test_env_resolver_in_a_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("COVSSL_TEST_SECRET", "hunter2-do-not-print")
    path = _write(tmp_path, "c.yaml", "train:\n  out_dir: ${oc.env:COVSSL_TEST_SECRET}\n")
    with pytest.raises(ValueError, match=r"c\.yaml: train\.out_dir: resolver interpolations") as info:
        load_config(path)
    assert "hunter2" not in str(info.value)


def test_unparsable_override_value_is_a_value_error():
    with pytest.raises(ValueError, match="command-line override"):
        load_config(None, ["optim.lr=[1"])


def test_node_interpolation_still_works():
    assert load_config(None, ["optim.lr=${train.epochs}"]).optim.lr == 100.0


def test_saved_run_config_names_the_file(tmp_path):
    path = _write(tmp_path, "config.yaml", "a: &x 1\nb: *x\n")
    with pytest.raises(ValueError, match=r"config\.yaml:1:4: .*restore it or use another run"):
        load_saved_config(path)
    with pytest.raises(ValueError, match="saved config"):
        from_yaml("- 1\n")

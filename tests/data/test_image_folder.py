"""ImageFolder trees: scanning, decoding, errors, the decoded-image cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covssl.data import image_folder
from covssl.data.image_folder import load_image_folder, scan_image_folder

from ._builders import make_tree, write_image


@pytest.fixture
def counted_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls of the decoding step (one call decodes a whole tree)."""
    calls: list[int] = []
    real = image_folder.decode_images

    def counting(files: list[str], *args: object, **kwargs: object) -> None:
        calls.append(len(files))
        real(files, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(image_folder, "decode_images", counting)
    return calls


def _load(root: Path, cache: Path, **kwargs: object):  # noqa: ANN202 - test shorthand
    return load_image_folder(root, cache_dir=cache, progress=False, **kwargs)  # type: ignore[arg-type]


def test_loads_pixels_labels_and_sorted_classes(tmp_path: Path) -> None:
    written = make_tree(tmp_path / "src", {"zebra": 2, "ant": 3, "mole": 1})
    ds = _load(tmp_path / "src", tmp_path / "cache")
    assert ds.classes == ["ant", "mole", "zebra"] and ds.name == "imagefolder"
    assert ds.images.shape == (6, 6, 5, 3) and ds.image_size == (6, 5)
    assert ds.labels.tolist() == [0, 0, 0, 1, 2, 2]
    expected = np.stack(written["ant"] + written["mole"] + written["zebra"])
    np.testing.assert_array_equal(ds.images, expected)  # PNG is lossless


def test_extensions_are_case_insensitive_and_other_files_ignored(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    img = lambda: rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)  # noqa: E731
    src = tmp_path / "src"
    for name in ("a.PNG", "b.JpG", "c.jpeg", "d.bmp", "e.WEBP", "sub/f.png"):
        write_image(src / "c0" / name, img())
    (src / "c0" / "notes.txt").write_text("not an image")
    (src / "c0" / ".hidden.png").write_bytes(b"junk")
    (src / ".git").mkdir()
    folder, classes, files, labels = scan_image_folder(src)
    assert classes == ["c0"] and labels.tolist() == [0] * 6
    assert [os.path.relpath(f, folder) for f in files] == [
        "c0/a.PNG", "c0/b.JpG", "c0/c.jpeg", "c0/d.bmp", "c0/e.WEBP", "c0/sub/f.png"]
    assert len(_load(src, tmp_path / "cache")) == 6


def test_split_subfolders_and_flat_trees(tmp_path: Path) -> None:
    make_tree(tmp_path / "s" / "train", {"a": 3, "b": 2})
    make_tree(tmp_path / "s" / "test", {"a": 1, "b": 1}, seed=5)
    assert len(_load(tmp_path / "s", tmp_path / "c", split="train")) == 5
    assert len(_load(tmp_path / "s", tmp_path / "c", split="test")) == 2
    make_tree(tmp_path / "flat", {"a": 2})
    assert len(_load(tmp_path / "flat", tmp_path / "c")) == 2
    with pytest.raises(FileNotFoundError, match="no train/ and test/"):
        _load(tmp_path / "flat", tmp_path / "c", split="test")
    make_tree(tmp_path / "only" / "train", {"a": 1})
    with pytest.raises(FileNotFoundError, match="no test/ folder"):
        _load(tmp_path / "only", tmp_path / "c", split="test")
    with pytest.raises(ValueError, match="split"):
        _load(tmp_path / "s", tmp_path / "c", split="val")


def test_errors_name_the_offending_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        _load(tmp_path / "missing", tmp_path / "c")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        _load(tmp_path / "empty_root", tmp_path / "c")
    make_tree(tmp_path / "r", {"full": 1})
    (tmp_path / "r" / "hollow").mkdir()
    (tmp_path / "r" / "hollow" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="hollow.*holds no images"):
        _load(tmp_path / "r", tmp_path / "c")


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
def test_corrupt_image_is_named(tmp_path: Path, content: object) -> None:
    make_tree(tmp_path / "r", {"a": 2}, size=(32, 32))
    bad = tmp_path / "r" / "a" / "zz_bad.png"
    if content == "truncated":
        good = (tmp_path / "r" / "a" / "img000.png").read_bytes()
        bad.write_bytes(good[: len(good) // 2])
    else:
        bad.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="zz_bad.png"):
        _load(tmp_path / "r", tmp_path / "c")
    assert not list((tmp_path / "c").rglob("meta.json")) and not list((tmp_path / "c").rglob("*.tmp*"))


def test_mixed_sizes_raise_or_resize(tmp_path: Path) -> None:
    make_tree(tmp_path / "r", {"a": 2}, size=(8, 8))
    write_image(tmp_path / "r" / "b" / "odd.png", np.zeros((8, 6, 3), np.uint8))
    with pytest.raises(ValueError, match=r"odd.png is 8x6"):
        _load(tmp_path / "r", tmp_path / "c")
    ds = _load(tmp_path / "r", tmp_path / "c", image_size=(5, 7))
    assert ds.images.shape == (3, 5, 7, 3)
    ds = _load(tmp_path / "r", tmp_path / "c", image_size=4)
    assert ds.image_size == (4, 4)
    for bad in (0, (4,), "4", (4, 0)):
        with pytest.raises(ValueError, match="image_size"):
            _load(tmp_path / "r", tmp_path / "c", image_size=bad)


def test_gray_and_rgba_are_converted_to_rgb(tmp_path: Path) -> None:
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    write_image(tmp_path / "r" / "g" / "x.png", gray)
    rgba = np.dstack([np.full((4, 4, 3), 7, np.uint8), np.full((4, 4), 200, np.uint8)])
    (tmp_path / "r" / "h").mkdir()
    Image.fromarray(rgba).save(tmp_path / "r" / "h" / "y.png")  # (H, W, 4) uint8 -> an RGBA PNG
    ds = _load(tmp_path / "r", tmp_path / "c")
    for c in range(3):
        np.testing.assert_array_equal(ds.images[0, :, :, c], gray)
    with Image.open(tmp_path / "r" / "h" / "y.png") as im:
        assert im.mode == "RGBA"
    assert (ds.images[1] == 7).all()


def test_max_per_class_keeps_the_first_sorted_files(tmp_path: Path) -> None:
    written = make_tree(tmp_path / "r", {"a": 4, "b": 1})
    ds = _load(tmp_path / "r", tmp_path / "c", max_per_class=2)
    assert ds.labels.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(ds.images, np.stack(written["a"][:2] + written["b"]))
    with pytest.raises(ValueError, match="max_per_class"):
        _load(tmp_path / "r", tmp_path / "c", max_per_class=0)


def test_second_load_is_memory_mapped_without_decoding(tmp_path: Path, counted_decodes: list[int]) -> None:
    make_tree(tmp_path / "r", {"a": 3, "b": 2})
    first = _load(tmp_path / "r", tmp_path / "c")
    second = _load(tmp_path / "r", tmp_path / "c")
    assert counted_decodes == [5]
    assert isinstance(first.images, np.memmap) and isinstance(second.images, np.memmap)
    assert not second.images.flags.writeable
    np.testing.assert_array_equal(first.images, second.images)
    (entry,) = (tmp_path / "c" / "decoded").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["images.npy", "labels.npy", "meta.json"]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["classes"] == ["a", "b"] and meta["fingerprint"]["count"] == 5


def test_changed_source_invalidates_the_cache(tmp_path: Path, counted_decodes: list[int]) -> None:
    src, cache = tmp_path / "r", tmp_path / "c"
    make_tree(src, {"a": 2, "b": 2})
    _load(src, cache)
    write_image(src / "b" / "img999.png", np.zeros((6, 5, 3), np.uint8))  # a new file
    assert len(_load(src, cache)) == 5
    os.replace(src / "a" / "img000.png", src / "b" / "moved.png")  # a move changes a label
    ds = _load(src, cache)
    assert ds.labels.tolist() == [0, 1, 1, 1, 1]
    path = src / "b" / "img000.png"
    st = path.stat()  # only the mtime changes: same name and size, but the content may differ
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _load(src, cache)
    write_image(path, np.full((6, 5, 3), 9, np.uint8))  # new content (and size)
    ds = _load(src, cache)
    assert (ds.images[1] == 9).all()
    assert counted_decodes == [4, 5, 5, 5, 5]
    _load(src, cache)
    assert len(counted_decodes) == 5


def test_damaged_or_half_written_entries_are_rebuilt(tmp_path: Path, counted_decodes: list[int]) -> None:
    src, cache = tmp_path / "r", tmp_path / "c"
    make_tree(src, {"a": 2})
    _load(src, cache)
    (entry,) = (cache / "decoded").iterdir()
    (entry / "meta.json").write_text("{not json")
    _load(src, cache)
    np.save(entry / "images.npy", np.zeros((1, 6, 5, 3), np.uint8))  # shape disagrees with meta.json
    ds = _load(src, cache)
    assert counted_decodes == [2, 2, 2] and ds.images.shape == (2, 6, 5, 3)


def test_crash_while_decoding_leaves_no_usable_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, cache = tmp_path / "r", tmp_path / "c"
    written = make_tree(src, {"a": 2})
    _load(src, cache)
    write_image(src / "a" / "img002.png", written["a"][0])

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(image_folder, "decode_images", crash)
        with pytest.raises(KeyboardInterrupt):
            _load(src, cache)
    (entry,) = (cache / "decoded").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["images.npy", "labels.npy"]  # no commit record, no tmp
    assert len(_load(src, cache)) == 3


def test_cache_location_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "r", {"a": 1})
    monkeypatch.setenv("COVSSL_CACHE", str(tmp_path / "env_cache"))
    load_image_folder(tmp_path / "r", progress=False)
    assert list((tmp_path / "env_cache" / "decoded").iterdir())
    ds = load_image_folder(tmp_path / "r", cache_dir=tmp_path / "nocache", use_cache=False, progress=False)
    assert not (tmp_path / "nocache").exists() and not isinstance(ds.images, np.memmap)


def test_worker_processes_match_serial_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_folder, "_CHUNK", 3)  # several chunks from a tiny tree
    make_tree(tmp_path / "r", {"a": 5, "b": 4})
    serial = load_image_folder(tmp_path / "r", use_cache=False, workers=0, progress=False)
    done: list[tuple[int, int]] = []
    pooled = load_image_folder(tmp_path / "r", use_cache=False, workers=2, progress=lambda d, t: done.append((d, t)))
    np.testing.assert_array_equal(serial.images, pooled.images)
    assert done == [(3, 9), (6, 9), (9, 9)]
    (tmp_path / "r" / "b" / "img003.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="img003.png"):
        load_image_folder(tmp_path / "r", use_cache=False, workers=2, progress=False)


def test_progress_bar_does_not_break_without_a_terminal(tmp_path: Path) -> None:
    make_tree(tmp_path / "r", {"a": 2})
    assert len(load_image_folder(tmp_path / "r", use_cache=False, progress=True)) == 2


def test_entry_rebuilt_by_another_process_right_after_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If a concurrent build drops meta.json between our commit and our read-back, use images.npy."""
    written = make_tree(tmp_path / "r", {"a": 2, "b": 1})
    monkeypatch.setattr(image_folder.cache, "load_entry", lambda entry, fp: None)
    ds = _load(tmp_path / "r", tmp_path / "c")
    assert isinstance(ds.images, np.memmap) and ds.labels.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(ds.images, np.stack(written["a"] + written["b"]))

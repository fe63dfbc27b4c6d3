"""The decoded-image cache: location, fingerprint, commit protocol."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from covssl.data import cache


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVSSL_CACHE", str(tmp_path / "env"))
    assert cache.default_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert cache.default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("COVSSL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_cache_dir() == tmp_path / "home" / ".cache" / "covssl"


def _files(root: Path, contents: dict[str, bytes]) -> list[str]:
    out = []
    for rel, data in contents.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        out.append(str(root / rel))
    return out


def test_fingerprint_counts_sizes_and_newest_mtime(tmp_path: Path) -> None:
    files = _files(tmp_path, {"a/1.png": b"x" * 10, "a/2.png": b"y" * 3, "b/3.png": b""})
    os.utime(files[1], ns=(0, 5 * 10**18))
    fp = cache.fingerprint(files, tmp_path)
    stats = [os.stat(f) for f in files]
    assert fp["count"] == 3 and fp["total_bytes"] == 13
    assert fp["newest_mtime_ns"] == max(s.st_mtime_ns for s in stats) == 5 * 10**18
    assert cache.fingerprint(files, tmp_path) == fp  # stable when nothing changes


def test_fingerprint_sees_edits_and_moves(tmp_path: Path) -> None:
    files = _files(tmp_path, {"a/1.png": b"xx", "b/2.png": b"yy"})
    fp = cache.fingerprint(files, tmp_path)
    Path(files[0]).write_bytes(b"xxx")
    assert cache.fingerprint(files, tmp_path) != fp
    fp = cache.fingerprint(files, tmp_path)
    st = os.stat(files[1])
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.fingerprint(files, tmp_path) != fp
    fp = cache.fingerprint(files, tmp_path)
    os.replace(files[1], tmp_path / "a" / "2.png")  # same bytes, same mtime, other class folder
    moved = [files[0], str(tmp_path / "a" / "2.png")]
    new = cache.fingerprint(moved, tmp_path)
    assert new["paths_sha256"] != fp["paths_sha256"]
    assert {k: v for k, v in new.items() if k != "paths_sha256"} == {k: v for k, v in fp.items() if k != "paths_sha256"}


def _write_entry(entry: Path, n: int = 3) -> tuple[np.ndarray, dict]:
    images = np.arange(n * 2 * 2 * 3, dtype=np.uint8).reshape(n, 2, 2, 3)
    out, tmp = cache.open_images_for_writing(entry, images.shape)
    out[:] = images
    fp = {"count": n}
    cache.commit_entry(entry, out, tmp, np.arange(n), {"fingerprint": fp, "shape": list(images.shape)})
    return images, fp


def test_commit_then_load_round_trip(tmp_path: Path) -> None:
    entry = tmp_path / "e"
    images, fp = _write_entry(entry)
    assert sorted(p.name for p in entry.iterdir()) == ["images.npy", "labels.npy", "meta.json"]
    hit = cache.load_entry(entry, fp)
    assert hit is not None
    got_images, labels, meta = hit
    assert isinstance(got_images, np.memmap) and meta["version"] == cache.CACHE_VERSION
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(labels, [0, 1, 2])


def test_load_refuses_stale_or_inconsistent_entries(tmp_path: Path) -> None:
    entry = tmp_path / "e"
    assert cache.load_entry(entry, {}) is None  # missing
    _, fp = _write_entry(entry)
    assert cache.load_entry(entry, {"count": 4}) is None  # source changed
    meta = json.loads((entry / "meta.json").read_text())
    (entry / "meta.json").write_text(json.dumps(dict(meta, version=-1)))
    assert cache.load_entry(entry, fp) is None  # older layout
    _write_entry(entry)
    np.save(entry / "labels.npy", np.arange(2))
    assert cache.load_entry(entry, fp) is None  # labels from another build
    _write_entry(entry)
    (entry / "images.npy").write_bytes(b"garbage")
    assert cache.load_entry(entry, fp) is None


def test_opening_a_new_build_invalidates_the_old_entry(tmp_path: Path) -> None:
    entry = tmp_path / "e"
    _, fp = _write_entry(entry)
    out, tmp = cache.open_images_for_writing(entry, (1, 2, 2, 3))
    assert cache.load_entry(entry, fp) is None  # meta.json is gone until the new build commits
    del out
    cache.discard(tmp)
    assert not tmp.exists()


def test_entry_dir_depends_on_the_key(tmp_path: Path) -> None:
    a = cache.entry_dir(tmp_path, "x-train", {"source": "/a", "image_size": None})
    assert a == cache.entry_dir(tmp_path, "x-train", {"image_size": None, "source": "/a"})
    assert a != cache.entry_dir(tmp_path, "x-train", {"source": "/a", "image_size": [8, 8]})
    assert a.name.startswith("x-train-") and a.parent == tmp_path / "decoded"

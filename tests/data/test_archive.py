"""Download with md5 check, safe extraction, the once-only CIFAR-10 copy."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from covssl.data import archive
from covssl.data.archive import download_url, extract_archive, file_digest, prepare_cifar10_copy

from ._builders import png_bytes, tar_bytes


def test_file_digest_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # > one 1 MiB read chunk
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f") == hashlib.md5(data).hexdigest()
    assert file_digest(tmp_path / "f", "sha256") == hashlib.sha256(data).hexdigest()


def test_download_verifies_md5_before_publishing(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)
    good = hashlib.md5(src.read_bytes()).hexdigest()
    dest = download_url(src.as_uri(), tmp_path / "dl" / "a.bin", md5=good.upper())
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(ValueError, match=f"expected {'0' * 32}, got {good}"):
        download_url(src.as_uri(), tmp_path / "dl" / "b.bin", md5="0" * 32)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["a.bin"]  # no partial file left
    with pytest.raises(OSError):
        download_url((tmp_path / "missing").as_uri(), tmp_path / "dl" / "c.bin")


def test_extracts_tar_and_zip(tmp_path: Path) -> None:
    (tmp_path / "a.tar.gz").write_bytes(tar_bytes({"top/x.txt": b"x", "top/sub/y.txt": b"yy"}))
    out = extract_archive(tmp_path / "a.tar.gz", tmp_path / "t")
    assert (out / "top" / "sub" / "y.txt").read_bytes() == b"yy"
    (tmp_path / "a.tar").write_bytes(tar_bytes({"p.txt": b"p"}, mode="w"))
    assert (extract_archive(tmp_path / "a.tar", tmp_path / "u") / "p.txt").read_bytes() == b"p"
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("z/q.txt", "q")
    assert (extract_archive(tmp_path / "a.zip", tmp_path / "v") / "z" / "q.txt").read_text() == "q"


@pytest.mark.parametrize("evil", ["../evil", "ok/../../evil", "/tmp/covssl-evil-absolute"])
def test_path_traversal_is_refused_before_writing(tmp_path: Path, evil: str) -> None:
    (tmp_path / "bad.tar.gz").write_bytes(tar_bytes({"fine.txt": b"f", evil: b"pwned"}))
    with pytest.raises(ValueError, match="refusing"):
        extract_archive(tmp_path / "bad.tar.gz", tmp_path / "out" / "dest")
    assert not (tmp_path / "out" / "evil").exists() and not Path("/tmp/covssl-evil-absolute").exists()
    assert list((tmp_path / "out" / "dest").iterdir()) == []  # nothing at all was extracted
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("fine.txt", "f")
        zf.writestr(evil, "pwned")
    with pytest.raises(ValueError, match="refusing"):
        extract_archive(tmp_path / "bad.zip", tmp_path / "zout")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE])
def test_links_and_special_files_are_refused(tmp_path: Path, kind: bytes) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("link")
        info.type = kind
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    (tmp_path / "l.tar").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="refusing"):
        extract_archive(tmp_path / "l.tar", tmp_path / "out")
    assert not (tmp_path / "out" / "link").exists()


def test_not_an_archive_or_missing(tmp_path: Path) -> None:
    (tmp_path / "x.tar.gz").write_bytes(b"definitely not gzip")
    with pytest.raises(ValueError, match="not a readable"):
        extract_archive(tmp_path / "x.tar.gz", tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="nope"):
        extract_archive(tmp_path / "nope.tar", tmp_path / "o")


def _image_tar(path: Path) -> Path:
    img = png_bytes(np.zeros((4, 4, 3), np.uint8))
    members = {f"tiny/{s}/{c}/{i}.png": img for s in ("train", "test") for c in ("a", "b") for i in range(2)}
    path.write_bytes(tar_bytes(members))
    return path


def test_prepare_copy_extracts_once_and_returns_the_split_root(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    tar = _image_tar(tmp_path / "tiny-jpeg.tar.gz")
    root = prepare_cifar10_copy(tar, tmp_path / "cache")
    assert root.name == "tiny" and sorted(p.name for p in root.iterdir()) == ["test", "train"]
    assert sorted(p.name for p in (root / "train" / "a").iterdir()) == ["0.png", "1.png"]
    calls = []
    monkeypatch.setattr(archive, "extract_archive", lambda *a: calls.append(a))
    assert prepare_cifar10_copy(tar, tmp_path / "cache") == root and calls == []  # idempotent
    assert [p.name for p in (tmp_path / "cache" / "extracted").iterdir()] == [root.parent.name]  # no tmp dirs


def test_prepare_copy_checks_the_sidecar_and_the_layout(tmp_path: Path) -> None:
    tar = _image_tar(tmp_path / "t.tar.gz")
    (tmp_path / "t.tar.gz.sha256").write_text(hashlib.sha256(tar.read_bytes()).hexdigest() + "  t.tar.gz\n")
    assert prepare_cifar10_copy(tar, tmp_path / "c1").name == "tiny"
    (tmp_path / "t.tar.gz.sha256").write_text("f" * 64 + "  t.tar.gz\n")
    with pytest.raises(ValueError, match="sha256"):
        prepare_cifar10_copy(tar, tmp_path / "c2")
    flat = tmp_path / "flat.tar.gz"
    flat.write_bytes(tar_bytes({"x/a/0.png": b"0"}))
    with pytest.raises(ValueError, match="train/ and test/"):
        prepare_cifar10_copy(flat, tmp_path / "c3")
    assert list((tmp_path / "c3" / "extracted").iterdir()) == []  # the failed extraction was removed
    with pytest.raises(FileNotFoundError):
        prepare_cifar10_copy(tmp_path / "missing.tar.gz", tmp_path / "c4")


def test_prepare_copy_removes_only_abandoned_partial_extractions(tmp_path: Path) -> None:
    tar = _image_tar(tmp_path / "tiny-jpeg.tar.gz")
    sha = file_digest(tar, "sha256")
    base = tmp_path / "cache" / "extracted"
    old, young = base / f".tiny-jpeg-{sha[:16]}.old.tmp", base / f".tiny-jpeg-{sha[:16]}.young.tmp"
    for d in (old, young):
        (d / "partial").mkdir(parents=True)
    os.utime(old, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    prepare_cifar10_copy(tar, tmp_path / "cache")
    assert not old.exists() and young.exists()  # a young one may belong to a process still extracting

"""Download, checksum and safely extract dataset archives.

An archive is untrusted input: a member named ``../evil`` or ``/etc/x``, or a link pointing
outside the destination, would write outside it. :func:`extract_archive` refuses the whole
archive before writing anything if one member is unsafe, and then extracts with tarfile's
``filter="data"`` (Python >= 3.11.4 / 3.12) as a second line of defence.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path, PurePosixPath

_CHUNK = 1 << 20
_STALE_S = 3600.0  # an unfinished extraction older than this was abandoned


def file_digest(path: str | os.PathLike[str], algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB chunks.

    Args:
        path: the file.
        algorithm: any ``hashlib`` name ("md5", "sha256").

    Returns:
        The lowercase hex digest.

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "f"; _ = p.write_bytes(b"abc")
        >>> file_digest(p)
        '900150983cd24fb0d6963f7d28e17f72'
    """
    # usedforsecurity=False keeps md5 usable on FIPS-mode systems (it detects corruption here).
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download_url(url: str, dest: str | os.PathLike[str], md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its md5 before it appears there.

    The bytes go to a temporary file next to ``dest`` and are renamed into place only when the
    checksum matches, so a failed or tampered download never looks like a finished one. Any
    URL ``urllib`` opens works, including ``file://`` (which the tests use).

    Args:
        url: the source.
        dest: the final file path (parent folders are created).
        md5: the expected hex md5, or None to skip the check.
        timeout: socket timeout in seconds.

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        ValueError: the checksum does not match (the download is deleted).

    Examples:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a").write_bytes(b"abc")
        >>> download_url((d / "a").as_uri(), d / "b", md5="900150983cd24fb0d6963f7d28e17f72").read_bytes()
        b'abc'
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    h = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            while chunk := response.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
        if md5 is not None and h.hexdigest() != md5.lower():
            raise ValueError(f"download {url}: md5 mismatch, expected {md5.lower()}, got {h.hexdigest()}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _check_member_name(name: str, archive: Path) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"archive {archive}: refusing absolute member path {name!r}")
    if ".." in p.parts:
        raise ValueError(f"archive {archive}: refusing member path with '..' {name!r}")


def extract_archive(path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a tar (plain/gz/bz2/xz) or zip archive into ``dest``, refusing unsafe members.

    Refused (ValueError, before anything is written): absolute paths, paths containing "..",
    symbolic and hard links, device files and FIFOs. Only regular files and folders pass.

    Args:
        path: the archive.
        dest: the folder to extract into (created if needed).

    Returns:
        ``dest`` as a ``Path``.

    Examples:
        >>> import tarfile, tempfile, pathlib, io
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with tarfile.open(d / "a.tar", "w") as t:
        ...     info = tarfile.TarInfo("x/hello.txt"); info.size = 2
        ...     t.addfile(info, io.BytesIO(b"hi"))
        >>> (extract_archive(d / "a.tar", d / "out") / "x" / "hello.txt").read_text()
        'hi'
    """
    path, dest = Path(path), Path(dest)
    if not path.is_file():
        raise FileNotFoundError(f"archive: no such file {path}")
    dest.mkdir(parents=True, exist_ok=True)
    if not tarfile.is_tarfile(path) and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                _check_member_name(info.filename, path)
                # The high 16 bits of external_attr hold the Unix mode; 0o120000 marks a symlink.
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise ValueError(f"archive {path}: refusing symbolic link member {info.filename!r}")
            zf.extractall(dest)
        return dest
    try:
        tf = tarfile.open(path)
    except tarfile.TarError as exc:
        raise ValueError(f"archive {path}: not a readable tar or zip archive ({exc})") from exc
    with tf:
        members = tf.getmembers()
        for m in members:
            _check_member_name(m.name, path)
            if m.issym() or m.islnk():
                raise ValueError(f"archive {path}: refusing link member {m.name!r} -> {m.linkname!r}")
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"archive {path}: refusing special member {m.name!r} (device/FIFO)")
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python < 3.11.4; the checks above already cover what "data" would
            tf.extractall(dest, members=members)
    return dest


def _find_split_root(folder: Path) -> Path | None:
    """The shallowest folder (depth <= 2) holding both train/ and test/ subfolders."""
    for candidate in [folder, *sorted(folder.iterdir()), *sorted(folder.glob("*/*"))]:
        if candidate.is_dir() and (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    return None


def prepare_cifar10_copy(tar_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Extract an ImageFolder archive (e.g. the CIFAR-10 JPEG copy) once into the cache.

    The archive is keyed by its sha256, so a changed archive gets a new folder. If a
    ``<tar_path>.sha256`` file sits next to it, the archive is verified against it first.
    Extraction goes to a temporary folder that is renamed into place only when complete, so
    an interrupted run leaves nothing that a later call would mistake for a finished copy;
    later calls return the existing folder without reading the archive beyond its hash.

    Args:
        tar_path: the archive, e.g. ``/path/to/cifar10-jpeg.tar.gz``.
        cache_dir: the cache root (default ``$COVSSL_CACHE`` or ``~/.cache/covssl``).

    Returns:
        The folder whose ``train/`` and ``test/`` subfolders hold one folder per class.

    Examples:
        >>> root = prepare_cifar10_copy("/path/to/cifar10-jpeg.tar.gz")  # doctest: +SKIP
        >>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
        ['test', 'train']
    """
    from covssl.data.cache import default_cache_dir

    tar_path = Path(tar_path)
    if not tar_path.is_file():
        raise FileNotFoundError(f"tar_path: no such archive {tar_path}")
    sha = file_digest(tar_path, "sha256")
    sidecar = tar_path.with_name(tar_path.name + ".sha256")
    if sidecar.is_file():
        expected = sidecar.read_text().split()[0].lower()
        if expected != sha:
            raise ValueError(f"tar_path: sha256 of {tar_path} is {sha}, but {sidecar} says {expected}")
    base = default_cache_dir(cache_dir) / "extracted"
    final = base / f"{tar_path.name.split('.')[0]}-{sha[:16]}"
    if not final.is_dir():
        base.mkdir(parents=True, exist_ok=True)
        for stale in base.glob(f".{final.name}.*.tmp"):  # left by a killed run; a live one is younger
            if time.time() - stale.stat().st_mtime > _STALE_S:
                shutil.rmtree(stale, ignore_errors=True)
        tmp = base / f".{final.name}.{uuid.uuid4().hex}.tmp"
        try:
            extract_archive(tar_path, tmp)
            if _find_split_root(tmp) is None:
                raise ValueError(f"tar_path: {tar_path} holds no folder with train/ and test/ subfolders")
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():  # another process finishing first is fine; anything else is not
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    root = _find_split_root(final)
    if root is None:
        raise ValueError(f"cache folder {final} holds no folder with train/ and test/ subfolders; delete it")
    return root

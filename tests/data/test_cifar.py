"""CIFAR-10/100: official batches (archive, download, safe unpickling) and ImageFolder copies."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from covssl.data import cifar, load_dataset, prepare_cifar10_copy
from covssl.data.cifar import load_cifar, read_batch

from ._builders import make_tree, tar_bytes

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
REPO = Path(__file__).resolve().parents[2]
SHARED_TAR = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def _batch(rng: np.random.Generator, n: int, label_key: str, n_classes: int) -> dict:
    # As in the official files: rows of 3072 bytes = the R, G, B planes of a 32x32 image, row-major.
    return {"batch_label": "fake", "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: rng.integers(0, n_classes, n).tolist(), "filenames": [f"{i}.png" for i in range(n)]}


def _fake_cifar10(tmp_path: Path, n: int = 4, extra: dict[str, bytes] | None = None) -> tuple[Path, str, dict]:
    """A tar.gz laid out like cifar-10-python.tar.gz; returns (path, md5, batches by file name)."""
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": _batch(rng, n, "labels", 10) for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, n, "labels", 10)
    members = {f"cifar-10-batches-py/{k}": pickle.dumps(v, protocol=2) for k, v in batches.items()}
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": CIFAR10_NAMES}, protocol=2)
    members.update(extra or {})
    path = tmp_path / "served" / "cifar-10-python.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tar_bytes(members))
    return path, hashlib.md5(path.read_bytes()).hexdigest(), batches


def _reference_images(data: np.ndarray) -> np.ndarray:
    """pixel (h, w, c) of image k is data[k, c * 1024 + h * 32 + w]."""
    out = np.empty((len(data), 32, 32, 3), np.uint8)
    for c in range(3):
        for h in range(32):
            out[:, h, :, c] = data[:, c * 1024 + h * 32: c * 1024 + h * 32 + 32]
    return out


def test_download_verify_extract_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served, md5, batches = _fake_cifar10(tmp_path)
    kw = {"root": tmp_path / "data", "download": True, "cache_dir": tmp_path / "cache", "url": served.as_uri(),
          "md5": md5}
    train = load_cifar("cifar10", split="train", **kw)
    test = load_cifar("cifar10", split="test", **kw)
    data = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    np.testing.assert_array_equal(train.images, _reference_images(data))
    assert train.labels.tolist() == sum((batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    np.testing.assert_array_equal(test.images, _reference_images(batches["test_batch"]["data"]))
    assert train.classes == CIFAR10_NAMES and train.name == "cifar10" and len(test) == 4
    assert (tmp_path / "cache" / "downloads" / "cifar-10-python.tar.gz").is_file()
    assert (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").is_file()
    monkeypatch.setattr(cifar, "download_url", lambda *a, **k: pytest.fail("must not download again"))
    assert len(load_cifar("cifar10", split="test", **kw)) == 4


def test_download_with_wrong_md5_extracts_nothing(tmp_path: Path) -> None:
    served, md5, _ = _fake_cifar10(tmp_path)
    with pytest.raises(ValueError, match="md5 mismatch"):
        load_cifar("cifar10", tmp_path / "data", download=True, cache_dir=tmp_path / "cache",
                   url=served.as_uri(), md5="0" * 32)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    assert not any((tmp_path / "cache" / "downloads").iterdir())
    with pytest.raises(ValueError, match="md5 mismatch"):  # the default is the official md5
        load_cifar("cifar10", tmp_path / "data", download=True, cache_dir=tmp_path / "cache", url=served.as_uri())


def test_archive_with_traversal_member_is_refused(tmp_path: Path) -> None:
    served, md5, _ = _fake_cifar10(tmp_path, extra={"../evil": b"pwned"})
    with pytest.raises(ValueError, match="refusing.*evil"):
        load_cifar("cifar10", tmp_path / "data", download=True, cache_dir=tmp_path / "cache",
                   url=served.as_uri(), md5=md5)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "data" / "evil").exists()
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists()


def test_archive_found_in_root_is_verified_first(tmp_path: Path) -> None:
    served, md5, _ = _fake_cifar10(tmp_path)
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(served, root / served.name)
    with pytest.raises(ValueError, match="md5 mismatch"):  # not the official archive
        load_cifar("cifar10", root, cache_dir=tmp_path / "cache")
    assert len(load_cifar("cifar10", root, "test", md5=md5, cache_dir=tmp_path / "cache")) == 4


def test_unpickler_refuses_anything_but_numpy_arrays(tmp_path: Path) -> None:
    marker = tmp_path / "was_executed"

    class Exploit:
        def __reduce__(self) -> tuple:
            return (os.mkdir, (str(marker),))

    (tmp_path / "evil").write_bytes(pickle.dumps({"data": Exploit()}, protocol=2))
    with pytest.raises(ValueError, match="refusing global"):
        read_batch(tmp_path / "evil")
    assert not marker.exists()
    (tmp_path / "ok").write_bytes(pickle.dumps({b"data": np.arange(3, dtype=np.uint8)}, protocol=2))
    assert read_batch(tmp_path / "ok")["data"].tolist() == [0, 1, 2]


def test_cifar100_batches_and_subsetting(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "root" / "cifar-100-python"
    folder.mkdir(parents=True)
    batches = {"train": _batch(rng, 300, "fine_labels", 100), "test": _batch(rng, 5, "fine_labels", 100)}
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [f"c{i:03d}" for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names}, protocol=2))
    ds = load_dataset("cifar100", tmp_path / "root", "train")
    assert len(ds) == 300 and ds.num_classes == 100 and ds.labels.tolist() == batches["train"]["fine_labels"]
    small = load_dataset("cifar100", tmp_path / "root", "train", max_per_class=1, image_size=8)
    y = np.array(batches["train"]["fine_labels"])
    assert small.labels.tolist() == [y[i] for i in sorted(np.unique(y, return_index=True)[1])]
    assert small.image_size == (8, 8)
    assert load_dataset("cifar100", folder, "test").labels.tolist() == batches["test"]["fine_labels"]


def test_imagefolder_copy_and_missing_data(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    make_tree(root / "cifar10" / "train", {c: 2 for c in CIFAR10_NAMES}, size=(32, 32))
    make_tree(root / "cifar10" / "test", {c: 1 for c in CIFAR10_NAMES}, size=(32, 32))
    ds = load_dataset("cifar10", root, "test", cache_dir=tmp_path / "cache", progress=False)
    assert len(ds) == 10 and ds.classes == CIFAR10_NAMES and ds.image_size == (32, 32)
    make_tree(tmp_path / "bad" / "train", {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="2 class folders"):
        load_dataset("cifar10", tmp_path / "bad", cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_dataset("cifar10", tmp_path / "nothing", cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_real_cifar10_copy(pytestconfig: pytest.Config, tmp_path: Path) -> None:
    """The shared JPEG copy: 50,000 + 10,000 images of 32x32 in 10 classes.

    Extracting 60k files is slow on some filesystems (20-75 s here, and removing them again
    took 118 s), so the extracted copy goes to pytest's persistent cache (.pytest_cache/, git-
    ignored; keyed by the archive's sha256, so it is never stale). Decoding all 60k images
    into a fresh decoded-image cache runs every time.
    """
    if not SHARED_TAR.is_file():
        pytest.skip(f"{SHARED_TAR} not present")
    store = pytestconfig.cache.mkdir("covssl-data") if pytestconfig.cache is not None else tmp_path / "store"
    t0 = time.perf_counter()
    root = prepare_cifar10_copy(SHARED_TAR, store)
    t1 = time.perf_counter()
    train = load_dataset("cifar10", root, "train", cache_dir=tmp_path, progress=False)
    test = load_dataset("cifar10", root, "test", cache_dir=tmp_path, progress=False)
    t2 = time.perf_counter()
    again = load_dataset("cifar10", root, "train", cache_dir=tmp_path, progress=False)
    t3 = time.perf_counter()
    print(f"\nCIFAR-10 copy: extract (or reuse) {t1 - t0:.1f} s, decode 60k {t2 - t1:.1f} s, "
          f"cached train load {t3 - t2:.2f} s")
    assert (len(train), len(test)) == (50000, 10000)
    assert train.classes == test.classes == CIFAR10_NAMES and train.image_size == (32, 32)
    assert np.bincount(train.labels).tolist() == [5000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    assert isinstance(again.images, np.memmap) and 60 < float(again.images[:1000].mean()) < 200
    x, y = again.__getitems__([0, 49999])
    assert tuple(x.shape) == (2, 3, 32, 32) and y.tolist() == [0, 9]
    del train, test, again
    shutil.rmtree(tmp_path / "decoded")  # 184 MB of .npy; the next run decodes afresh anyway


def test_bad_names_and_splits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cifar10"):
        load_cifar("cifar11", tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_cifar("cifar10", tmp_path, split="valid")

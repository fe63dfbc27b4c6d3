"""Suite-wide settings: one torch thread per test worker.

``make test`` runs two pytest workers on two cores; torch's default of one thread per core
per process would make them fight (measured: 56 s vs 10 s for tests/models/).
"""

import torch

torch.set_num_threads(1)


from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_CIFAR10 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session")
def cifar10_store(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A persistent folder (pytest's cache, git-ignored) for the extracted CIFAR-10 copy and its decoded arrays.

    Extracting 60k files takes up to a minute on this filesystem, so it happens once per machine.
    """
    if not SHARED_CIFAR10.is_file():
        pytest.skip(f"the CIFAR-10 copy is not at {SHARED_CIFAR10}")
    if pytestconfig.cache is not None:
        return Path(pytestconfig.cache.mkdir("covssl-data"))
    return tmp_path_factory.mktemp("covssl-data")


@pytest.fixture(scope="session")
def cifar10_root(cifar10_store: Path) -> Path:
    """The extracted CIFAR-10 copy (folder with train/ and test/ class folders)."""
    from covssl.data import prepare_cifar10_copy

    return prepare_cifar10_copy(SHARED_CIFAR10, cifar10_store)

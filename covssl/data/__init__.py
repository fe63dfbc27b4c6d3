"""Datasets for training and evaluation, all as uint8 image arrays.

``load_dataset(name, root, split, download, cache_dir)`` returns an :class:`ImageArrayDataset`
for "digits" (offline default, bundled with scikit-learn), "cifar10", "cifar100" or
"imagefolder". Batches come out of ``make_loader`` (or ``DataLoader(..., collate_fn=collate_batch)``)
as one fancy-index: uint8 (batch, 3, H, W) images and int64 (batch,) labels.
"""

from covssl.data.archive import download_url, extract_archive, file_digest, prepare_cifar10_copy
from covssl.data.arrays import ImageArrayDataset, collate_batch, first_per_class, make_loader
from covssl.data.cache import default_cache_dir
from covssl.data.cifar import load_cifar, load_cifar_batches
from covssl.data.digits import load_digits
from covssl.data.image_folder import load_image_folder, scan_image_folder
from covssl.data.registry import list_datasets, load_dataset

__all__ = [
    "ImageArrayDataset",
    "collate_batch",
    "default_cache_dir",
    "download_url",
    "extract_archive",
    "file_digest",
    "first_per_class",
    "list_datasets",
    "load_cifar",
    "load_cifar_batches",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "make_loader",
    "prepare_cifar10_copy",
    "scan_image_folder",
]

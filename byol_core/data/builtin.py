"""Where images come from: the built-in digits, Fashion-MNIST, CIFAR-10 and STL10 (torchvision's
downloads, or Debian's Fashion-MNIST files), and image folders (:mod:`byol_core.data.folder`).

Each source ends up as a :class:`~byol_core.data.types.Source` (uint8 images, int64 labels) that
:func:`byol_core.data.loading.load_data` splits. The downloaded sets are decoded once into a disk cache
(:mod:`.builtin_cache`) and read from it a batch at a time, as image folders are; the 1,797 bundled digits
(115 KB) stay in memory, where a cache would buy nothing.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..config import DATASETS, DataConfig
from .builtin_cache import Decoded, Part, cache_folder, cached_set
from .folder import folder_source_key, load_folder
from .splits import split_rng
from .types import DataError, ImageSet, Progress, Source, as_image_set

# Debian's ``dataset-fashion-mnist`` package installs the original idx files here;
# reading them directly works offline. ``BYOL_FASHION_MNIST_DIR`` overrides it.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "BYOL_FASHION_MNIST_DIR"
_FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
def _fashion_dir() -> Path:
    return Path(os.environ.get(FASHION_MNIST_ENV) or DEBIAN_FASHION_MNIST_DIR)


def _has_debian_fashion(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _FASHION_FILES.values())


def source_key(cfg: DataConfig) -> tuple:
    """The config fields (and on-disk facts) that decide what gets decoded."""
    root = os.path.abspath(os.path.expanduser(cfg.root))
    if cfg.name == "digits":
        return ("digits",)
    if cfg.name == "fashion-mnist":
        directory = _fashion_dir()
        if _has_debian_fashion(directory):
            return ("fashion-mnist", "idx", str(directory.resolve()))
        return ("fashion-mnist", "torchvision", root)
    if cfg.name == "stl10":
        # The unlabelled cap is applied while reading (the full split is 2.7 GB).
        return ("stl10", root, cfg.max_unlabeled_images, cfg.split_seed)
    if cfg.name == "folder":
        return folder_source_key(cfg)
    return (cfg.name, root)


def load_source(cfg: DataConfig, report: Progress) -> Source:
    if cfg.name == "digits":
        return _load_digits(cfg, report)
    if cfg.name == "folder":
        return load_folder(cfg, report)
    if cfg.name not in _DOWNLOADED:
        raise DataError(f"unknown data set {cfg.name!r}; choose one of {list(DATASETS)}.")
    source_folder, files, decode = _DOWNLOADED[cfg.name](cfg, report)
    where = cache_folder(cfg.root, cfg.name, source_folder)
    cached = cached_set(cfg.name, where, files, decode, report)
    report(f"Reading {cfg.name} from its disk cache at {where}", 0.9)
    parts = cached.parts
    unlabeled = parts.get("unlabeled")
    if unlabeled is not None:
        unlabeled = _capped_unlabeled(unlabeled, cfg)
    return Source(classes=cached.classes, train=parts["train"], test=parts.get("test"), unlabeled=unlabeled)


def _digits_csv() -> Path | None:
    """scikit-learn's bundled copy of the UCI digits, found without importing scikit-learn (about 1.5 s on
    2 cores: the dashboard's first page opens on digits). None where a scikit-learn release moved it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as (8x8 float counts 0..16, label per image), as ``sklearn.datasets.load_digits`` gives."""
    path = _digits_csv()
    if path is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    table = np.loadtxt(path, delimiter=",")  # 64 pixel counts, then the label (load_digits reads it the same way)
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def _load_digits(cfg: DataConfig, report: Progress) -> Source:
    counts, labels = read_digits()
    # Pixel values are counts 0..16; stretch them to the usual 0..255 range.
    images = np.rint(counts * (255.0 / 16.0)).astype(np.uint8)[:, None]
    report("Loaded digits", 0.5)
    return Source(classes=[str(c) for c in range(10)], train=as_image_set(images, labels), test=None)


def _torchvision_error(name: str, cfg: DataConfig, layout: str, exc: Exception) -> DataError:
    root = os.path.abspath(os.path.expanduser(cfg.root))
    if cfg.download:
        hint = (f"The download failed: check the network connection, or download the files "
                f"yourself and place them under {root} ({layout}).")
    else:
        hint = (f"data.download is false: place the files under {root} ({layout}), "
                f"or set data.download=true to fetch them.")
    return DataError(f"could not load {name} from root {root!r}: {exc}. {hint}")


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one gzipped idx file (big-endian header: magic, then one uint32 per dimension)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"could not read {path}: {exc}. Reinstall dataset-fashion-mnist or "
                        f"point {FASHION_MNIST_ENV} at a directory with intact files.") from exc
    ndim = magic & 0xFF
    header = 4 * (1 + ndim)
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic or len(raw) < header:
        raise DataError(f"{path} is not an idx file with magic number {magic} (found {found}); "
                        f"replace it with the original Fashion-MNIST file.")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"{path} holds {len(raw)} bytes but its header {dims} needs {expected}; "
                        f"the file is truncated or corrupt, replace it.")
    # Copy: frombuffer over bytes is read-only, which torch warns about.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


# torchvision's FashionMNIST.classes, here so that reading Debian's files needs no torchvision.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


def _fashion_mnist(cfg: DataConfig, report: Progress) -> tuple[Path, list[Path], Callable[[], Decoded]]:
    """Where Fashion-MNIST's files are (Debian's idx files, else torchvision's), and how to decode them."""
    classes = list(FASHION_CLASSES)
    directory = _fashion_dir()
    if _has_debian_fashion(directory):
        def decode_idx() -> Decoded:
            parts = {}
            for split in ("train", "test"):
                images = _read_idx(directory / _FASHION_FILES[f"{split}_images"], 2051)
                labels = _read_idx(directory / _FASHION_FILES[f"{split}_labels"], 2049)
                if len(images) != len(labels):
                    raise DataError(f"{directory}: {split} has {len(images)} images but {len(labels)} "
                                    f"labels; replace the files with the original ones.")
                parts[split] = Part.in_memory(images[:, None], labels)
                report(f"Decoded fashion-mnist {split} from {directory}", 0.2 if split == "train" else 0.4)
            return Decoded(classes, parts)

        return directory, [directory / f for f in _FASHION_FILES.values()], decode_idx

    raw = Path(cfg.root) / "FashionMNIST" / "raw"

    def decode_torchvision() -> Decoded:
        from torchvision.datasets import FashionMNIST  # only here: importing torchvision costs seconds

        parts = {}
        for train in (True, False):
            try:
                ds = FashionMNIST(root=cfg.root, train=train, download=cfg.download)
            except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
                raise _torchvision_error("fashion-mnist", cfg, "FashionMNIST/raw/*-ubyte, or install "
                                         "Debian's dataset-fashion-mnist package", exc) from exc
            parts["train" if train else "test"] = Part.in_memory(ds.data.unsqueeze(1).numpy(), ds.targets)
            report(f"Decoded fashion-mnist {'train' if train else 'test'}", 0.2 if train else 0.4)
        return Decoded(classes, parts)

    return raw, [raw / f.removesuffix(".gz") for f in _FASHION_FILES.values()], decode_torchvision


def _cifar10(cfg: DataConfig, report: Progress) -> tuple[Path, list[Path], Callable[[], Decoded]]:
    base = Path(cfg.root) / "cifar-10-batches-py"
    files = [base / f"data_batch_{i}" for i in range(1, 6)] + [base / "test_batch", base / "batches.meta"]

    def decode() -> Decoded:
        from torchvision.datasets import CIFAR10

        parts, classes = {}, []
        for train in (True, False):
            try:
                ds = CIFAR10(root=cfg.root, train=train, download=cfg.download)
            except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
                raise _torchvision_error("cifar10", cfg, "cifar-10-batches-py/", exc) from exc
            # .data is (N, H, W, C) numpy; reading it directly avoids a PIL round trip per image.
            parts["train" if train else "test"] = Part.in_memory(np.asarray(ds.data).transpose(0, 3, 1, 2),
                                                                 ds.targets)
            classes = list(ds.classes)
            report(f"Decoded cifar10 {'train' if train else 'test'}", 0.2 if train else 0.4)
        return Decoded(classes, parts)

    return base, files, decode


def _stl10(cfg: DataConfig, report: Progress) -> tuple[Path, list[Path], Callable[[], Decoded]]:
    base = Path(cfg.root) / "stl10_binary"
    files = [base / f for f in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin")]

    def decode() -> Decoded:
        from torchvision.datasets import STL10

        parts, classes = {}, list(_STL10_CLASSES)
        for split in ("train", "test"):
            try:
                ds = STL10(root=cfg.root, split=split, download=cfg.download)
            except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
                raise _torchvision_error("stl10", cfg, "stl10_binary/", exc) from exc
            parts[split] = Part.in_memory(ds.data, ds.labels)
            classes = list(getattr(ds, "classes", classes))
            report(f"Decoded stl10 {split}", 0.2 if split == "train" else 0.3)
        parts["unlabeled"] = _stl10_unlabeled(base / "unlabeled_X.bin", cfg)
        return Decoded(classes, parts)

    return base, files, decode


_DOWNLOADED = {"fashion-mnist": _fashion_mnist, "cifar10": _cifar10, "stl10": _stl10}
STL10_SIDE = 96


def _stl10_unlabeled(path: Path, cfg: DataConfig) -> Part:
    """The unlabelled split (2.7 GB), read a run of rows at a time while it is copied into the cache.

    The file uses the layout torchvision's STL10 reads: raw uint8 (N, 3, 96, 96) with each channel stored
    column-major, so each run of rows is transposed to (C, H, W).
    """
    row_bytes = 3 * STL10_SIDE * STL10_SIDE
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"could not read stl10 unlabelled images from {path}: {exc}. "
                        f"Delete stl10_binary/ under {cfg.root} and download it again.") from exc
    if size % row_bytes:
        raise DataError(f"{path} holds {size} bytes, not a whole number of 96x96 colour images; "
                        f"delete stl10_binary/ under {cfg.root} and download it again.")

    def read(start: int, end: int) -> np.ndarray:
        rows = np.fromfile(path, dtype=np.uint8, count=(end - start) * row_bytes, offset=start * row_bytes)
        return rows.reshape(-1, 3, STL10_SIDE, STL10_SIDE).transpose(0, 1, 3, 2)

    return Part(np.full(size // row_bytes, -1, dtype=np.int64), read)


def _capped_unlabeled(unlabeled: ImageSet, cfg: DataConfig) -> ImageSet:
    """``data.max_unlabeled_images`` of the unlabelled images, drawn from their own random stream: rows of the
    cache, nothing read."""
    n = len(unlabeled)
    cap = n if cfg.max_unlabeled_images is None else min(cfg.max_unlabeled_images, n)
    if cap == n:
        return unlabeled
    return unlabeled.subset(torch.from_numpy(np.sort(split_rng(cfg, 5).choice(n, cap, replace=False))))

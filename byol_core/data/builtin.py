"""Where images come from: the built-in digits, Fashion-MNIST, CIFAR-10 and STL10 (torchvision's
downloads, or Debian's Fashion-MNIST files), and image folders (:mod:`byol_core.data.folder`).

Each loader decodes its source into :class:`~byol_core.data.loading.Source` (uint8 images, int64 labels);
:func:`byol_core.data.loading.load_data` splits and caches the result.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np

from ..config import DATASETS, DataConfig
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
    loaders = {"digits": _load_digits, "fashion-mnist": _load_fashion_mnist,
               "cifar10": _load_cifar10, "stl10": _load_stl10, "folder": load_folder}
    if cfg.name not in loaders:
        raise DataError(f"unknown data set {cfg.name!r}; choose one of {list(DATASETS)}.")
    return loaders[cfg.name](cfg, report)


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


def _load_fashion_mnist(cfg: DataConfig, report: Progress) -> Source:
    classes = list(FASHION_CLASSES)
    directory = _fashion_dir()
    if _has_debian_fashion(directory):
        sets = []
        for split in ("train", "test"):
            images = _read_idx(directory / _FASHION_FILES[f"{split}_images"], 2051)
            labels = _read_idx(directory / _FASHION_FILES[f"{split}_labels"], 2049)
            if len(images) != len(labels):
                raise DataError(f"{directory}: {split} has {len(images)} images but {len(labels)} "
                                f"labels; replace the files with the original ones.")
            sets.append(as_image_set(images[:, None], labels))
            report(f"Loaded fashion-mnist {split} from {directory}", 0.45 if split == "train" else 0.9)
        return Source(classes=classes, train=sets[0], test=sets[1])

    from torchvision.datasets import FashionMNIST  # only here: importing torchvision costs seconds (torch._dynamo)

    sets = []
    for train in (True, False):
        try:
            ds = FashionMNIST(root=cfg.root, train=train, download=cfg.download)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
            raise _torchvision_error("fashion-mnist", cfg, "FashionMNIST/raw/*-ubyte, or install "
                                     "Debian's dataset-fashion-mnist package", exc) from exc
        sets.append(as_image_set(ds.data.unsqueeze(1), ds.targets))
        report(f"Loaded fashion-mnist {'train' if train else 'test'}", 0.45 if train else 0.9)
    return Source(classes=classes, train=sets[0], test=sets[1])


def _load_cifar10(cfg: DataConfig, report: Progress) -> Source:
    from torchvision.datasets import CIFAR10

    sets, classes = [], []
    for train in (True, False):
        try:
            ds = CIFAR10(root=cfg.root, train=train, download=cfg.download)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
            raise _torchvision_error("cifar10", cfg, "cifar-10-batches-py/", exc) from exc
        # .data is (N, H, W, C) numpy; reading it directly avoids a PIL round trip per image.
        sets.append(as_image_set(np.asarray(ds.data).transpose(0, 3, 1, 2), ds.targets))
        classes = list(ds.classes)
        report(f"Loaded cifar10 {'train' if train else 'test'}", 0.45 if train else 0.9)
    return Source(classes=classes, train=sets[0], test=sets[1])


def _load_stl10(cfg: DataConfig, report: Progress) -> Source:
    from torchvision.datasets import STL10

    sets, classes, base = [], list(_STL10_CLASSES), Path(cfg.root)
    for split in ("train", "test"):
        try:
            ds = STL10(root=cfg.root, split=split, download=cfg.download)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
            raise _torchvision_error("stl10", cfg, "stl10_binary/", exc) from exc
        sets.append(as_image_set(ds.data, ds.labels))
        classes = list(getattr(ds, "classes", classes))
        base = Path(ds.root) / ds.base_folder
        report(f"Loaded stl10 {split}", 0.3 if split == "train" else 0.5)
    unlabeled = _read_stl10_unlabeled(base / "unlabeled_X.bin", cfg)
    report("Loaded stl10 unlabeled", 0.9)
    return Source(classes=classes, train=sets[0], test=sets[1], unlabeled=unlabeled)


def _read_stl10_unlabeled(path: Path, cfg: DataConfig) -> ImageSet:
    """Read the (possibly capped) unlabelled split without loading all 100k images.

    The file (already checked by torchvision) uses the layout torchvision's STL10 reads:
    raw uint8 (N, 3, 96, 96) with each channel stored column-major.
    """
    try:
        flat = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise DataError(f"could not read stl10 unlabelled images from {path}: {exc}. "
                        f"Delete stl10_binary/ under {cfg.root} and download it again.") from exc
    all_images = flat.reshape(-1, 3, 96, 96)
    n = len(all_images)
    cap = n if cfg.max_unlabeled_images is None else min(cfg.max_unlabeled_images, n)
    index = np.arange(n) if cap == n else np.sort(split_rng(cfg, 5).choice(n, cap, replace=False))
    images = np.ascontiguousarray(all_images[index].transpose(0, 1, 3, 2))
    return as_image_set(images, np.full(len(images), -1))

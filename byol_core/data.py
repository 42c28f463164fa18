"""Load image data sets into memory as uint8 tensors.

Every source ends up as ``(N, C, H, W)`` uint8 images plus int64 labels (-1 where
unlabelled), split into train/test, a stratified labelled subset of train and,
for STL10, extra unlabelled images. Augmentation and normalisation happen later on
the device, so nothing here converts to float except the mean/std statistics.

Results are cached in-process (a few entries): callers get tensors that share
storage with the cache and must treat them as read-only (use ``.clone()`` or
``ImageSet.subset`` before modifying anything).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import DATASETS, DataConfig
from .files import atomic_torch_save

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "DataError",
    "DataSplits",
    "ImageSet",
    "available_datasets",
    "clear_cache",
    "load_data",
]

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
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
_CACHE_SIZE = 4

Progress = Callable[[str, float], None]


class DataError(RuntimeError):
    """A data set could not be loaded; the message says what is wrong and what to do."""


# --------------------------------------------------------------------------- containers
@dataclass(frozen=True)
class ImageSet:
    """Images and labels held in memory.

    ``images`` is uint8 ``(N, C, H, W)`` with C in {1, 3}; ``labels`` is int64 ``(N,)``
    with -1 for unlabelled images. Treat both as read-only: they may be shared with
    the loader's cache.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"ImageSet.images must be uint8 (N, C, H, W) with C 1 or 3, "
                             f"got {images.dtype} {tuple(images.shape)}.")
        if labels.dtype != torch.int64 or labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"ImageSet.labels must be int64 (N,) with N = {len(images)}, "
                             f"got {labels.dtype} {tuple(labels.shape)}.")
        # Downstream code slices batches and moves them to the device; contiguous keeps that cheap.
        object.__setattr__(self, "images", images.contiguous())
        object.__setattr__(self, "labels", labels.contiguous())

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor | Sequence[int]) -> ImageSet:
        """A new ImageSet holding copies of the selected images (an index tensor, list or mask)."""
        if not isinstance(index, torch.Tensor):
            index = torch.as_tensor(list(index), dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index])


@dataclass(frozen=True)
class DataSplits:
    """A loaded data set: train/test splits, the labelled subset and statistics."""

    name: str
    classes: list[str]
    train: ImageSet
    test: ImageSet
    unlabeled: ImageSet
    labelled_train: ImageSet
    mean: tuple[float, ...]
    std: tuple[float, ...]
    skipped_files: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def pretrain_images(self) -> torch.Tensor:
        """Train plus extra unlabelled images: what BYOL pretrains on (read-only; may be shared)."""
        if len(self.unlabeled) == 0:
            return self.train.images
        return torch.cat([self.train.images, self.unlabeled.images])


@dataclass(frozen=True)
class _Source:
    """Decoded images before splitting; ``test`` is None when the source has no test split."""

    classes: list[str]
    train: ImageSet
    test: ImageSet | None
    unlabeled: ImageSet | None = None
    skipped_files: tuple[str, ...] = ()


# --------------------------------------------------------------------------- cache
class _LRU:
    """A small thread-safe LRU dict (the dashboard loads from several threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# Decoded sources are cached separately from splits so changing e.g. label_fraction
# in the dashboard does not decode the images again.
_SOURCE_CACHE = _LRU(_CACHE_SIZE)
_SPLITS_CACHE = _LRU(_CACHE_SIZE)


def clear_cache() -> None:
    """Forget every cached data set (e.g. after files on disk changed)."""
    _SOURCE_CACHE.clear()
    _SPLITS_CACHE.clear()


# --------------------------------------------------------------------------- public API
def available_datasets() -> list[str]:
    """Names accepted by ``DataConfig.name``."""
    return list(DATASETS)


def load_data(cfg: DataConfig, progress: Progress | None = None) -> DataSplits:
    """Load ``cfg.name`` into memory and split it as ``cfg`` asks.

    ``progress(message, fraction)`` is called at start, after each split is loaded
    and when done. Results are cached per process; the returned tensors are shared
    with the cache and must not be modified in place.
    """
    report = progress or (lambda message, fraction: None)
    report(f"Loading {cfg.name}", 0.0)
    source_key = _source_key(cfg)
    splits_key = (source_key, cfg.test_fraction, cfg.label_fraction, cfg.max_train_images,
                  cfg.max_test_images, cfg.split_seed)
    splits = _SPLITS_CACHE.get(splits_key)
    if splits is None:
        source = _SOURCE_CACHE.get(source_key)
        if source is None:
            source = _load_source(cfg, report)
            _SOURCE_CACHE.put(source_key, source)
        report("Splitting", 0.95)
        splits = _make_splits(cfg, source)
        _SPLITS_CACHE.put(splits_key, splits)
    report(f"Loaded {cfg.name}: {len(splits.train)} train, {len(splits.test)} test, "
           f"{len(splits.unlabeled)} unlabelled images", 1.0)
    # Fresh lists so a caller appending to them cannot change the cached copy.
    return dataclasses.replace(splits, classes=list(splits.classes),
                               skipped_files=list(splits.skipped_files))


# --------------------------------------------------------------------------- splitting
def _rng(cfg: DataConfig, purpose: int) -> np.random.Generator:
    # One independent stream per purpose, so e.g. changing a cap does not move the test split.
    return np.random.default_rng([cfg.split_seed, purpose])


def _split_indices(labels: np.ndarray, fraction: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices; per class when labelled, keeping >= 1 train image per group."""
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    train, test = [], []
    for idx in groups:
        n = len(idx)
        n_test = round(fraction * n)
        # A group of two or more gets at least one test image; every group keeps one for training.
        n_test = min(max(n_test, 1 if n >= 2 else 0), n - 1)
        perm = rng.permutation(idx)
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _labelled_indices(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Stratified subset keeping round(fraction * n_c) (at least 1) of each class; skips -1."""
    keep = []
    for c in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == c)
        n_keep = min(max(round(fraction * len(idx)), 1), len(idx))
        keep.append(rng.permutation(idx)[:n_keep])
    if not keep:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(keep))


def _cap(images: ImageSet, cap: int | None, rng: np.random.Generator) -> ImageSet:
    if cap is None or cap >= len(images):
        return images
    return images.subset(torch.from_numpy(np.sort(rng.choice(len(images), cap, replace=False))))


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the 0..1 scale, in chunks to bound memory."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for chunk in torch.split(images, 4096):
        x = chunk.to(torch.float64).div_(255.0).transpose(0, 1).reshape(channels, -1)
        total += x.sum(1)
        total_sq += x.square().sum(1)
        count += x.shape[1]
    if count == 0:
        return (0.0,) * channels, (1.0,) * channels
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _empty_like(images: ImageSet) -> ImageSet:
    return ImageSet(images.images[:0].clone(), images.labels[:0].clone())


def _make_splits(cfg: DataConfig, source: _Source) -> DataSplits:
    train, test = source.train, source.test
    if test is None:
        tr, te = _split_indices(train.labels.numpy(), cfg.test_fraction, _rng(cfg, 1))
        train, test = train.subset(torch.from_numpy(tr)), train.subset(torch.from_numpy(te))
    train = _cap(train, cfg.max_train_images, _rng(cfg, 2))
    test = _cap(test, cfg.max_test_images, _rng(cfg, 3))
    keep = _labelled_indices(train.labels.numpy(), cfg.label_fraction, _rng(cfg, 4))
    # With every label kept (the default) share train's tensors instead of copying them.
    labelled = train if len(keep) == len(train) else train.subset(torch.from_numpy(keep))
    unlabeled = source.unlabeled if source.unlabeled is not None else _empty_like(train)
    mean, std = _channel_stats(train.images)
    return DataSplits(name=cfg.name, classes=list(source.classes), train=train, test=test,
                      unlabeled=unlabeled, labelled_train=labelled, mean=mean, std=std,
                      skipped_files=list(source.skipped_files))


# --------------------------------------------------------------------------- sources
def _fashion_dir() -> Path:
    return Path(os.environ.get(FASHION_MNIST_ENV) or DEBIAN_FASHION_MNIST_DIR)


def _has_debian_fashion(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _FASHION_FILES.values())


def _source_key(cfg: DataConfig) -> tuple:
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
        folder = _folder_path(cfg)
        listing = _list_folder(folder)
        # Sizes and mtimes make the cache notice files added or replaced since the last load.
        stamp = tuple((str(p), s.st_size, s.st_mtime_ns) for p, s in
                      ((p, p.stat()) for p, _ in listing.files))
        return ("folder", str(folder), cfg.folder_image_size, stamp)
    return (cfg.name, root)


def _load_source(cfg: DataConfig, report: Progress) -> _Source:
    loaders = {"digits": _load_digits, "fashion-mnist": _load_fashion_mnist,
               "cifar10": _load_cifar10, "stl10": _load_stl10, "folder": _load_folder}
    if cfg.name not in loaders:
        raise DataError(f"unknown data set {cfg.name!r}; choose one of {available_datasets()}.")
    return loaders[cfg.name](cfg, report)


def _as_set(images: np.ndarray | torch.Tensor, labels: Any) -> ImageSet:
    images = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images)
    return ImageSet(images.to(torch.uint8), torch.as_tensor(np.asarray(labels), dtype=torch.int64))


def _load_digits(cfg: DataConfig, report: Progress) -> _Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are counts 0..16; stretch them to the usual 0..255 range.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    report("Loaded digits", 0.5)
    return _Source(classes=[str(c) for c in digits.target_names], train=_as_set(images, digits.target),
                   test=None)


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


def _load_fashion_mnist(cfg: DataConfig, report: Progress) -> _Source:
    from torchvision.datasets import FashionMNIST

    classes = list(FashionMNIST.classes)
    directory = _fashion_dir()
    if _has_debian_fashion(directory):
        sets = []
        for split in ("train", "test"):
            images = _read_idx(directory / _FASHION_FILES[f"{split}_images"], 2051)
            labels = _read_idx(directory / _FASHION_FILES[f"{split}_labels"], 2049)
            if len(images) != len(labels):
                raise DataError(f"{directory}: {split} has {len(images)} images but {len(labels)} "
                                f"labels; replace the files with the original ones.")
            sets.append(_as_set(images[:, None], labels))
            report(f"Loaded fashion-mnist {split} from {directory}", 0.45 if split == "train" else 0.9)
        return _Source(classes=classes, train=sets[0], test=sets[1])

    sets = []
    for train in (True, False):
        try:
            ds = FashionMNIST(root=cfg.root, train=train, download=cfg.download)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
            raise _torchvision_error("fashion-mnist", cfg, "FashionMNIST/raw/*-ubyte, or install "
                                     "Debian's dataset-fashion-mnist package", exc) from exc
        sets.append(_as_set(ds.data.unsqueeze(1), ds.targets))
        report(f"Loaded fashion-mnist {'train' if train else 'test'}", 0.45 if train else 0.9)
    return _Source(classes=classes, train=sets[0], test=sets[1])


def _load_cifar10(cfg: DataConfig, report: Progress) -> _Source:
    from torchvision.datasets import CIFAR10

    sets, classes = [], []
    for train in (True, False):
        try:
            ds = CIFAR10(root=cfg.root, train=train, download=cfg.download)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
            raise _torchvision_error("cifar10", cfg, "cifar-10-batches-py/", exc) from exc
        # .data is (N, H, W, C) numpy; reading it directly avoids a PIL round trip per image.
        sets.append(_as_set(np.asarray(ds.data).transpose(0, 3, 1, 2), ds.targets))
        classes = list(ds.classes)
        report(f"Loaded cifar10 {'train' if train else 'test'}", 0.45 if train else 0.9)
    return _Source(classes=classes, train=sets[0], test=sets[1])


def _load_stl10(cfg: DataConfig, report: Progress) -> _Source:
    from torchvision.datasets import STL10

    sets, classes, base = [], list(_STL10_CLASSES), Path(cfg.root)
    for split in ("train", "test"):
        try:
            ds = STL10(root=cfg.root, split=split, download=cfg.download)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
            raise _torchvision_error("stl10", cfg, "stl10_binary/", exc) from exc
        sets.append(_as_set(ds.data, ds.labels))
        classes = list(getattr(ds, "classes", classes))
        base = Path(ds.root) / ds.base_folder
        report(f"Loaded stl10 {split}", 0.3 if split == "train" else 0.5)
    unlabeled = _read_stl10_unlabeled(base / "unlabeled_X.bin", cfg)
    report("Loaded stl10 unlabeled", 0.9)
    return _Source(classes=classes, train=sets[0], test=sets[1], unlabeled=unlabeled)


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
    index = np.arange(n) if cap == n else np.sort(_rng(cfg, 5).choice(n, cap, replace=False))
    images = np.ascontiguousarray(all_images[index].transpose(0, 1, 3, 2))
    return _as_set(images, np.full(len(images), -1))


# --------------------------------------------------------------------------- folders
@dataclass(frozen=True)
class _Listing:
    classes: list[str]
    files: list[tuple[Path, int]]  # (path, label); label -1 when the folder has no class subfolders
    ignored: list[str]


def _folder_path(cfg: DataConfig) -> Path:
    folder = Path(os.path.expanduser(cfg.folder or "")).absolute()
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise DataError(f"image folder {str(folder)!r} {what}. Set data.folder to a directory of "
                        f"images (optionally one subfolder per class).")
    return folder


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _images_under(directory: Path) -> list[Path]:
    # Hidden folders (.ipynb_checkpoints, .git, ...) never hold training images.
    return sorted(p for p in directory.rglob("*") if _is_image(p)
                  and not any(part.startswith(".") for part in p.relative_to(directory).parts))


def _list_folder(folder: Path) -> _Listing:
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class = [(d.name, _images_under(d)) for d in subdirs]
    per_class = [(name, files) for name, files in per_class if files]
    top_level = sorted(p for p in folder.iterdir() if _is_image(p))
    if not per_class:
        return _Listing(classes=[], files=[(p, -1) for p in top_level], ignored=[])
    files = [(p, label) for label, (_, paths) in enumerate(per_class) for p in paths]
    ignored = [f"{p}: not inside a class subfolder, ignored" for p in top_level]
    return _Listing(classes=[name for name, _ in per_class], files=files, ignored=ignored)


def _decode(path: Path, size: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        # For JPEGs, decoding at a reduced scale (still >= size) is much faster for big photos.
        img.draft("RGB", (size, size))
        img = img.convert("RGB")
        img = ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _decode_or_reason(path: Path, size: int) -> np.ndarray | str:
    try:
        return _decode(path, size)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt files; none is fatal
        return f"{path}: {type(exc).__name__}: {exc}"


def _folder_cache_path(cfg: DataConfig, key: tuple) -> Path:
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
    return Path(cfg.root).expanduser() / "cache" / f"folder-{digest}.pt"


def _load_folder(cfg: DataConfig, report: Progress) -> _Source:
    """Decode a folder once; later loads (other processes too) read the decoded uint8 tensors from disk.

    The cache file's name hashes every file's path, size and mtime and the target size, so any
    change to the folder makes a new one.
    """
    cache = _folder_cache_path(cfg, _source_key(cfg))
    if cache.is_file():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            report("Read decoded images from the cache", 0.9)
            return _Source(classes=list(saved["classes"]), train=ImageSet(saved["images"], saved["labels"]),
                           test=None, skipped_files=tuple(saved["skipped"]))
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
            cache.unlink(missing_ok=True)
    source = _decode_folder(cfg, report)
    try:
        atomic_torch_save(cache, {"classes": list(source.classes), "images": source.train.images,
                                  "labels": source.train.labels, "skipped": list(source.skipped_files)})
    except OSError:
        pass  # a read-only data root only costs the next process a decode
    return source


def _decode_folder(cfg: DataConfig, report: Progress) -> _Source:
    folder = _folder_path(cfg)
    listing = _list_folder(folder)
    if not listing.files:
        raise DataError(f"image folder {str(folder)!r} holds no images "
                        f"({', '.join(sorted(IMAGE_EXTENSIONS))}). Put images in it, or one "
                        f"subfolder of images per class.")
    size = cfg.folder_image_size
    images, labels, skipped = [], [], list(listing.ignored)
    n = len(listing.files)
    step = max(1, n // 10)
    # PIL releases the GIL while decoding, so threads give a real speed-up.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = pool.map(lambda item: _decode_or_reason(item[0], size), listing.files)
        for i, ((_, label), result) in enumerate(zip(listing.files, results, strict=True)):
            if isinstance(result, str):
                skipped.append(result)
            else:
                images.append(result)
                labels.append(label)
            if (i + 1) % step == 0:
                report(f"Decoded {i + 1}/{n} images", 0.05 + 0.85 * (i + 1) / n)
    if not images:
        shown = "; ".join(skipped[:3])
        raise DataError(f"image folder {str(folder)!r}: none of its {n} image files could be read "
                        f"({shown}{'; ...' if len(skipped) > 3 else ''}). Check that they are "
                        f"valid images.")
    return _Source(classes=listing.classes, train=_as_set(np.stack(images), labels), test=None,
                   skipped_files=tuple(skipped))

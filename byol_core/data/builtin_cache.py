"""The disk cache of a downloaded built-in set (Fashion-MNIST, CIFAR-10, STL10): decoded once, then read a
batch at a time, as an image folder is (:mod:`.image_cache`).

STL10's 100,000 unlabelled images are 2.8 GB as uint8: held in memory they were most of a training process.
From the cache, training reads random batches from the page cache with bounded memory, and a restart skips
decoding (no gunzip, no unpickling, no torchvision import). One folder per set and source folder, under
``$BYOL_CACHE_DIR`` or else ``<data.root>/cache``::

    builtin-<name>-<hash of where its files are>/
      meta.json        the source files' sizes and mtimes, the images file, the row shape, each part's rows
      images-<f>.u8    raw uint8 rows (C, H, W) of every part (train, then test, then unlabelled)
      labels-<f>.npy   int64 label per row (-1: unlabelled)
      .lock            held by whoever writes the cache

``<f>`` is a hash of the source files' sizes and mtimes: changed files write a new generation beside the old
one, whose readers keep their open file; ``meta.json`` switches atomically, then the old files are removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write, atomic_write_json, exclusive_lock, read_json_object
from ..text import size_text
from .disk_images import DiskImages
from .image_cache import CACHE_ENV, LOCK_WAIT_S, MIN_FREE_AFTER, cache_root
from .types import DataError, ImageSet, Progress

VERSION = 1
PARTS = ("train", "test", "unlabeled")
WRITE_CHUNK_BYTES = 64 * 2**20  # rows copied per write: bounded memory however large a part is


@dataclass(frozen=True)
class Part:
    """One split of a decoded set: its labels, and its images read ``read(start, end)`` rows at a time as uint8
    ``(n, C, H, W)``, so a part larger than memory (STL10's unlabelled file) is copied in pieces."""

    labels: np.ndarray
    read: Callable[[int, int], np.ndarray]

    @classmethod
    def in_memory(cls, images: np.ndarray | torch.Tensor, labels: object) -> Part:
        images = np.asarray(images)
        return cls(np.asarray(labels, dtype=np.int64).reshape(-1), lambda start, end: images[start:end])

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Decoded:
    """What a built-in set's loader decoded: its class names and its parts by name (train, test, unlabeled)."""

    classes: list[str]
    parts: dict[str, Part]


@dataclass(frozen=True)
class CachedSet:
    """A built-in set read from its cache: class names, and each part's images (rows of one file) and labels."""

    classes: list[str]
    parts: dict[str, ImageSet]


def cache_folder(data_root: str | Path, name: str, source: str | Path) -> Path:
    """The cache folder of data set ``name`` whose files are in ``source``."""
    digest = hashlib.sha1(f"{name}\0{Path(source).absolute()}".encode()).hexdigest()[:16]
    return cache_root(data_root) / f"builtin-{name}-{digest}"


def fingerprint(files: Sequence[Path]) -> list[list] | None:
    """Each source file's name, size and mtime: what says the cache still holds them; None when one is missing."""
    found = []
    for path in files:
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        found.append([str(Path(path).absolute()), stat.st_size, stat.st_mtime_ns])
    return found


def _tag(prints: list[list]) -> str:
    return hashlib.sha1(json.dumps(prints).encode()).hexdigest()[:12]


def _opened(where: Path, prints: list[list] | None) -> CachedSet | None:
    """The cache at ``where`` when it holds exactly the files ``prints`` describes, else None."""
    if prints is None:
        return None
    meta, _why = read_json_object(where / "meta.json")
    if meta is None or meta.get("version") != VERSION or meta.get("fingerprint") != prints:
        return None
    images, labels_file = where / meta["images"], where / meta["labels"]
    row_shape = tuple(meta["row_shape"])
    try:
        labels = np.load(labels_file)
        complete = images.stat().st_size == len(labels) * int(np.prod(row_shape))
    except (OSError, ValueError):
        return None
    if not complete:
        return None
    parts = {}
    for part, (start, count) in meta["parts"].items():
        rows = np.arange(start, start + count)
        parts[part] = ImageSet(DiskImages(images, row_shape, rows), torch.from_numpy(labels[rows]))
    return CachedSet(list(meta["classes"]), parts)


def cached_set(name: str, where: Path, files: Sequence[Path], decode: Callable[[], Decoded],
               report: Progress) -> CachedSet:
    """The set from its cache at ``where``; decoded (``decode``, which may download ``files``) and written there
    first when the cache is missing or ``files`` changed since. A DataError names what to do when the disk
    cannot hold it."""
    found = _opened(where, fingerprint(files))
    if found is not None:
        return found
    with exclusive_lock(where / ".lock", timeout=LOCK_WAIT_S):
        found = _opened(where, fingerprint(files))  # another process may have written it while this one waited
        if found is not None:
            return found
        decoded = decode()
        prints = fingerprint(files)
        if prints is None:
            missing = [str(p) for p in files if not Path(p).exists()]
            raise DataError(f"{name}: torchvision read the set but {', '.join(missing)} is missing, so the cache "
                            f"could not tell when it changes; place the original files there and try again.")
        _write(name, where, decoded, prints, report)
        found = _opened(where, prints)
        if found is None:
            raise DataError(f"{name}: the cache written at {where} could not be read back; delete that folder and "
                            "try again.")
        return found


def _write(name: str, where: Path, decoded: Decoded, prints: list[list], report: Progress) -> None:
    parts = [(part, decoded.parts[part]) for part in PARTS if part in decoded.parts]
    rows = sum(len(part) for _name, part in parts)
    first = next(part for _name, part in parts if len(part))
    row_shape = tuple(int(s) for s in first.read(0, 1).shape[1:])
    row_bytes = int(np.prod(row_shape))
    _check_room(name, where, rows * row_bytes)
    tag = _tag(prints)
    per_write = max(1, WRITE_CHUNK_BYTES // row_bytes)
    report(f"Writing {name} to its disk cache ({size_text(rows * row_bytes)} at {where})", 0.5)

    def write_images(fh) -> None:
        done = 0
        for _part_name, part in parts:
            for start in range(0, len(part), per_write):
                chunk = np.ascontiguousarray(part.read(start, min(start + per_write, len(part))), dtype=np.uint8)
                if chunk.shape[1:] != row_shape:
                    raise DataError(f"{name}: images of shape {chunk.shape[1:]} beside {row_shape}; the files are "
                                    "not the original ones, replace them.")
                fh.write(memoryview(chunk).cast("B"))
                done += len(chunk)
                report(f"Writing {name} to its disk cache: {done:,} of {rows:,} images", 0.5 + 0.4 * done / rows)

    atomic_write(where / f"images-{tag}.u8", write_images)
    labels = np.concatenate([part.labels for _name, part in parts]).astype(np.int64)
    atomic_write(where / f"labels-{tag}.npy", lambda fh: np.save(fh, labels))
    starts = np.cumsum([0] + [len(part) for _name, part in parts])[:-1]  # each part's first row
    meta = {"version": VERSION, "name": name, "fingerprint": prints, "images": f"images-{tag}.u8",
            "labels": f"labels-{tag}.npy", "row_shape": list(row_shape), "classes": list(decoded.classes),
            "parts": {part_name: [int(start), len(part)] for (part_name, part), start in zip(parts, starts, strict=True)}}
    atomic_write_json(where / "meta.json", meta)
    for old in [*where.glob("images-*.u8"), *where.glob("labels-*.npy")]:
        if tag not in old.name:
            old.unlink(missing_ok=True)  # a reader of the old generation keeps its open file


def _check_room(name: str, where: Path, needed: int) -> None:
    where.mkdir(parents=True, exist_ok=True)
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return
    if needed + MIN_FREE_AFTER > free:
        raise DataError(f"{name} is kept in a disk cache of {size_text(needed)} at {where}, but only "
                        f"{size_text(free)} are free there. Free disk space, or set {CACHE_ENV} to a folder on a "
                        "larger disk.")

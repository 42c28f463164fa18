"""Images that stay on disk: rows of a uint8 ``(N, C, H, W)`` file, read when a batch asks for them.

:class:`DiskImages` stands where an in-memory uint8 tensor stands (``ImageSet.images``): ``len``,
``shape``, ``dtype``, and indexing with an int, a slice, an index tensor or a mask return an ordinary
tensor holding just those rows. ``take`` makes a lazy subset (a split) without reading anything.

Rows are read with ``os.preadv`` from the page cache, not by indexing an ``np.memmap``: every page a
mapping touches counts in the process's resident memory until the kernel takes it back, so random
batches over an epoch would grow RSS to the size of the file; a read copies only the batch.

Anything else a tensor offers (``torch.cat``, ``.float()``, ``.to(device)``) works on the whole set
read into memory, so rarely used paths stay correct; the training and evaluation paths never do it.
Under torchrun a :meth:`DiskImages.sharded` view reads only this rank's rows of each global batch
(the others stay zero: they are augmented, then dropped by the rank's ``keep`` slice).
``names`` (optional) holds each row's file path inside its folder; subsets and joins carry them along.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import distributed

READ_CHUNK_BYTES = 64 * 2**20  # the most one preadv call reads when whole runs of rows are contiguous


class DiskImages:
    """Rows ``rows`` of the raw uint8 file ``path`` whose rows are ``row_shape`` (C, H, W), C-ordered.

    ``names``: each row's file path inside its folder (e.g. "cat/IMG_0042.jpg"), one per entry of ``rows``;
    None when unknown. An object array of the strings: subsets copy pointers, never the text.
    """

    disk_backed = True  # what code that would copy a whole set (pinning, moving to a GPU) checks
    dtype = torch.uint8
    ndim = 4
    device = torch.device("cpu")
    is_cuda = False

    def __init__(self, path: str | Path, row_shape: Sequence[int], rows: np.ndarray | Sequence[int], *,
                 shard_batches: bool = False, names: np.ndarray | Sequence[str] | None = None) -> None:
        self.path = str(path)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.rows.setflags(write=False)
        self.names = None if names is None else np.asarray(names, dtype=object).reshape(-1)
        if self.names is not None:
            if len(self.names) != len(self.rows):
                raise ValueError(f"{len(self.names)} names for {len(self.rows)} rows")
            self.names.setflags(write=False)
        self.shard_batches = shard_batches
        self.row_bytes = int(np.prod(self.row_shape))
        self.rows_read = 0  # how many rows this object has read: the sharding tests count them
        self._fd: int | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what a tensor answers
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.row_shape))

    def size(self, dim: int | None = None) -> torch.Size | int:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.rows)

    def numel(self) -> int:
        return len(self.rows) * self.row_bytes

    def element_size(self) -> int:
        return 1

    def contiguous(self, *args: Any, **kwargs: Any) -> DiskImages:
        return self

    def pin_memory(self) -> DiskImages:
        """Itself: each batch is read and copied on its own, so there is no whole set to pin."""
        return self

    def __repr__(self) -> str:
        return f"DiskImages({self.path!r}, {tuple(self.shape)}{', sharded' if self.shard_batches else ''})"

    # ------------------------------------------------------------------ subsets, without reading
    def file_names(self) -> np.ndarray | None:
        """Each row's file path inside its folder (an object array of str), or None when they are unknown."""
        return self.names

    def take(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> DiskImages:
        """The lazy subset at ``index`` (positions or a mask): nothing is read."""
        positions = self._positions(index)
        return DiskImages(self.path, self.row_shape, self.rows[positions], shard_batches=self.shard_batches,
                          names=None if self.names is None else self.names[positions])

    def sharded(self) -> DiskImages:
        """A view whose index-tensor reads (training batches) read only this rank's shard under torchrun."""
        return DiskImages(self.path, self.row_shape, self.rows, shard_batches=True, names=self.names)

    def concat(self, other: DiskImages) -> DiskImages:
        if (other.path, other.row_shape) != (self.path, self.row_shape):
            raise ValueError("only rows of the same cache file can be joined without reading them")
        names = None if self.names is None or other.names is None else np.concatenate([self.names, other.names])
        return DiskImages(self.path, self.row_shape, np.concatenate([self.rows, other.rows]),
                          shard_batches=self.shard_batches, names=names)

    # ------------------------------------------------------------------ reads
    def __getitem__(self, key: Any) -> torch.Tensor:
        rest = ()
        if isinstance(key, tuple):  # e.g. images[idx, 0]: rows first, the rest on the rows read
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            return self._read(self.rows[[self._positions([key])[0]]])[0][rest]
        if isinstance(key, slice):
            out = self._read(self.rows[key])
        else:
            positions = self._positions(key)
            batch = self._shard(len(positions)) if isinstance(key, torch.Tensor) else None
            out = self._read(self.rows[positions]) if batch is None else self._read_shard(positions, batch)
        return out[(slice(None), *rest)] if rest else out

    def _shard(self, count: int) -> slice | None:
        """This rank's positions of a batch of ``count`` when this view reads shards; None: read all."""
        if not self.shard_batches:
            return None
        world = distributed.current()
        if not world.active or count % world.size:
            return None
        return distributed.shard(count, world)

    def _read_shard(self, positions: np.ndarray, keep: slice) -> torch.Tensor:
        out = torch.zeros((len(positions), *self.row_shape), dtype=torch.uint8)
        out[keep] = self._read(self.rows[positions[keep]])
        return out

    def materialize(self) -> torch.Tensor:
        """Every row, in memory (what tensor operations other than indexing work on)."""
        return self._read(self.rows)

    def _positions(self, index: Any) -> np.ndarray:
        if isinstance(index, torch.Tensor):
            index = index.detach().cpu().numpy()
        index = np.asarray(index)
        if index.dtype == np.bool_:
            if index.shape != (len(self.rows),):
                raise IndexError(f"a mask of shape {index.shape} for {len(self.rows)} images")
            return np.flatnonzero(index)
        index = index.astype(np.int64, copy=False).reshape(-1)
        if index.size and (index.max() >= len(self.rows) or index.min() < -len(self.rows)):
            raise IndexError(f"index out of range for {len(self.rows)} images")
        return np.where(index < 0, index + len(self.rows), index)

    def _file(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            return self._fd

    def _read(self, file_rows: np.ndarray) -> torch.Tensor:
        """Rows ``file_rows`` of the file, in that order; each run of consecutive rows is one read."""
        out = np.empty((len(file_rows), *self.row_shape), dtype=np.uint8)
        if len(file_rows):
            fd = self._file()
            flat = out.reshape(len(file_rows), self.row_bytes)
            breaks = np.flatnonzero(np.diff(file_rows) != 1) + 1
            per_read = max(1, READ_CHUNK_BYTES // self.row_bytes)
            for run_start, run_end in zip(np.r_[0, breaks], np.r_[breaks, len(file_rows)], strict=True):
                for start in range(int(run_start), int(run_end), per_read):
                    end = min(start + per_read, int(run_end))
                    _read_exactly(fd, memoryview(flat[start:end]).cast("B"), int(file_rows[start]) * self.row_bytes,
                                  self.path)
            self.rows_read += len(file_rows)
        return torch.from_numpy(out)

    # ------------------------------------------------------------------ the whole set, when asked for
    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.materialize().to(*args, **kwargs)

    def clone(self) -> torch.Tensor:
        return self.materialize()

    def float(self) -> torch.Tensor:
        return self.materialize().float()

    def numpy(self) -> np.ndarray:
        return self.materialize().numpy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        """Any other torch function gets the whole set read into memory (correct, never the fast path)."""
        return func(*_materialized(args), **_materialized(kwargs or {}))

    # ------------------------------------------------------------------ pickling: the file is opened again
    def __reduce__(self) -> tuple:
        return (_rebuild, (self.path, self.row_shape, self.rows, self.shard_batches, self.names))

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


def _rebuild(path: str, row_shape: tuple, rows: np.ndarray, shard_batches: bool,
             names: np.ndarray | None = None) -> DiskImages:
    return DiskImages(path, row_shape, rows, shard_batches=shard_batches, names=names)


def _materialized(value: Any) -> Any:
    if isinstance(value, DiskImages):
        return value.materialize()
    if isinstance(value, (list, tuple)):
        return type(value)(_materialized(v) for v in value)
    if isinstance(value, dict):
        return {k: _materialized(v) for k, v in value.items()}
    return value


def _read_exactly(fd: int, buffer: memoryview, offset: int, path: str) -> None:
    done = 0
    while done < len(buffer):
        got = os.preadv(fd, [buffer[done:]], offset + done)
        if got <= 0:
            raise OSError(f"{path} ends before the images its index names; delete the cache folder to rebuild it")
        done += got


def is_disk_backed(images: Any) -> bool:
    """Whether ``images`` stay on disk (a :class:`DiskImages`), so copying all of them would defeat the point."""
    return bool(getattr(images, "disk_backed", False))


__all__ = ["DiskImages", "is_disk_backed"]

"""The disk cache of an image folder: each image decoded once, then read back a batch at a time.

One folder per image folder and stored size, under ``$BYOL_CACHE_DIR`` or else ``<data.root>/cache``::

    folder-<hash of the folder's path>-<size>px/
      meta.json        the current generation's images file and log, the stored size and channels
      images-<g>.u8    raw uint8 rows (C, S, S), C-ordered, row r at byte r·C·S·S:
                       np.memmap(path, np.uint8, "r", shape=(rows, C, S, S)) reads it
      rows-<g>.jsonl   one line per decoded file: its path in the folder, bytes, mtime_ns and its row,
                       or why it was skipped; a later line for the same path wins
      .lock            held by whoever updates the cache

The first pass decodes in worker processes, a chunk of files per task, and writes rows, then their
log lines (the rows synced first): a pass stopped at any point resumes from its last logged chunk.
Files added later are decoded and appended; a file whose size or mtime changed is decoded again
into a new row; removed files drop out of what is returned. When more than half of the rows are
such leftovers the live rows are copied into a new generation (``meta.json`` switches atomically).
Labels are not stored: they follow each file's class subfolder in the current listing.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write_json, exclusive_lock, parse_jsonl, read_json_object
from ..text import size_text
from .disk_images import DiskImages
from .types import DataError

CACHE_ENV = "BYOL_CACHE_DIR"
VERSION = 1
CHUNK = 32  # files per worker task: large enough to amortise the hand-over, small enough to resume near the stop
POOL_MIN = 256  # fewer files to decode than this are decoded here: starting workers would cost more
SYNC_EVERY_S = 1.0  # rows are synced and their log lines written at least this often (what a crash can lose)
PROGRESS_EVERY_S = 0.5
COMPACT_MIN_LEFTOVERS = 1024  # fewer rows of removed or changed files than this are left in place
MIN_FREE_AFTER = 256 * 2**20  # the cache never fills the disk to its last 256 MB
LOCK_WAIT_S = 6 * 3600.0  # another process decoding the same folder: wait for it, it may be a long first pass
# Images per second one worker process decodes (JPEGs a few hundred pixels a side, stored at 96 px): what the
# guard rail's time estimate is based on. benchmarks/folder_cache.py measured 826 per CPU-second on x86_64; a
# worker on a shared, busy core gets a fraction of that (435 images/s from 2 workers on 2 busy cores).
IMAGES_PER_S_PER_WORKER = 250.0

Decode = Callable[[Path, int], "np.ndarray | str"]  # an image as uint8 (C, S, S), or why it was skipped
Progress = Callable[[int, int], None]  # (files decoded so far, files to decode)


@dataclass(frozen=True)
class FolderFile:
    """One file of the listing: where it is (a string: a folder lists hundreds of thousands), its label, and
    what says it changed."""

    path: str
    relative: str
    label: int
    bytes: int
    mtime_ns: int


def cache_root(data_root: str | Path) -> Path:
    """Where caches are kept: ``$BYOL_CACHE_DIR``, else ``<data.root>/cache``."""
    return Path(os.environ.get(CACHE_ENV) or Path(data_root).expanduser() / "cache").expanduser().absolute()


def _duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


@dataclass(frozen=True)
class CachePlan:
    """What bringing a cache up to date costs: images to decode, disk needed and free, the time it takes."""

    where: Path
    images: int
    to_decode: int
    row_bytes: int
    free_bytes: int | None
    workers: int

    @property
    def bytes_needed(self) -> int:
        return self.to_decode * self.row_bytes

    @property
    def cache_bytes(self) -> int:
        return self.images * self.row_bytes

    @property
    def seconds(self) -> float:
        return self.to_decode / (IMAGES_PER_S_PER_WORKER * self.workers)

    def describe(self) -> str:
        if self.to_decode == 0:
            return f"all {self.images:,} images are in the cache ({size_text(self.cache_bytes)} at {self.where})"
        free = "free space unknown" if self.free_bytes is None else f"{size_text(self.free_bytes)} free"
        return (f"{self.to_decode:,} of {self.images:,} images to decode into the cache: "
                f"{size_text(self.bytes_needed)} more on the disk of {self.where} ({free}), about "
                f"{_duration_text(self.seconds)} at ~{IMAGES_PER_S_PER_WORKER * self.workers:.0f} images/s "
                f"with {self.workers} worker process(es)")

    def problem(self) -> str | None:
        """Why the cache cannot be written (too little disk), naming what to do; None when it can."""
        if self.free_bytes is None or self.bytes_needed + MIN_FREE_AFTER <= self.free_bytes:
            return None
        return (f"the image cache needs {size_text(self.bytes_needed + MIN_FREE_AFTER)} free at {self.where} for "
                f"{self.to_decode:,} images ({size_text(self.row_bytes)} each at this size; the first pass would "
                f"take about {_duration_text(self.seconds)}), but {size_text(self.free_bytes)} are free. Free "
                f"disk space there, set {CACHE_ENV} to a folder on a larger disk, lower data.folder_image_size, "
                "or point data.folder at fewer images.")


@dataclass(frozen=True)
class CachedFolder:
    """The readable images of a listing, in its order, with their labels; the files skipped and why."""

    images: DiskImages
    labels: np.ndarray
    skipped: list[str]


def _decode_chunk(decode: Decode, paths: list[str], size: int) -> list[np.ndarray | str]:
    return [decode(Path(p), size) for p in paths]


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts a worker at once; a spawned one imports torch and the whole package again (many seconds on a
    # busy machine). The workers only run PIL, never torch, so the parent's threads do not matter to them.
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


class ImageCache:
    """The cache folder of one image folder at one stored size (see the module's docstring)."""

    def __init__(self, where: Path, size: int, channels: int = 3) -> None:
        self.where, self.size, self.channels = Path(where), int(size), int(channels)
        self.row_shape = (self.channels, self.size, self.size)
        self.row_bytes = self.channels * self.size * self.size

    @classmethod
    def for_folder(cls, folder: Path, size: int, data_root: str | Path) -> ImageCache:
        digest = hashlib.sha1(str(Path(folder).absolute()).encode()).hexdigest()[:16]
        return cls(cache_root(data_root) / f"folder-{digest}-{int(size)}px", size)

    # ------------------------------------------------------------------ reading the state on disk
    def _meta(self) -> dict | None:
        meta, _why = read_json_object(self.where / "meta.json")
        if meta is None or meta.get("version") != VERSION or meta.get("size") != self.size \
                or meta.get("channels") != self.channels or not isinstance(meta.get("generation"), int):
            return None
        return meta

    def _paths(self, generation: int) -> tuple[Path, Path]:
        return self.where / f"images-{generation}.u8", self.where / f"rows-{generation}.jsonl"

    def _entries(self, log: Path) -> dict[str, dict]:
        try:
            text = log.read_text(errors="replace")
        except FileNotFoundError:
            return {}
        try:  # one parse of the whole log is several times faster than line by line ...
            lines = json.loads("[" + ",".join(text.splitlines()) + "]")
        except ValueError:  # ... which a torn last line (a crash while writing) needs
            lines = parse_jsonl(text)
        # Lines we did not write (a damaged file) are passed over: those files are decoded again.
        return {e["path"]: e for e in lines if isinstance(e.get("path"), str) and
                (isinstance(e.get("skipped"), str) or (type(e.get("row")) is int and e["row"] >= 0))}

    @staticmethod
    def _current(entry: dict | None, f: FolderFile) -> bool:
        return entry is not None and entry.get("bytes") == f.bytes and entry.get("mtime_ns") == f.mtime_ns

    def plan(self, files: Sequence[FolderFile], workers: int | None = None) -> CachePlan:
        """What :meth:`update` would decode and write for ``files`` (reads the log, decodes nothing)."""
        meta = self._meta()
        entries = self._entries(self._paths(meta["generation"])[1]) if meta else {}
        to_decode = sum(not self._current(entries.get(f.relative), f) for f in files)
        return self._plan(len(files), to_decode, workers)

    def _plan(self, images: int, to_decode: int, workers: int | None) -> CachePlan:
        probe = self.where if self.where.exists() else next((p for p in self.where.parents if p.exists()), None)
        try:
            free = shutil.disk_usage(probe).free if probe is not None else None
        except OSError:
            free = None
        workers = workers or default_workers()
        return CachePlan(self.where, images, to_decode, self.row_bytes, free,
                         1 if to_decode < POOL_MIN else min(workers, max(1, to_decode // CHUNK)))

    # ------------------------------------------------------------------ bringing it up to date
    def update(self, files: Sequence[FolderFile], decode: Decode, progress: Progress | None = None,
               workers: int | None = None, limit: int | None = None,
               on_plan: Callable[[CachePlan], None] | None = None) -> CachedFolder:
        """Decode what is not cached yet, then return every readable file's row, in the order of ``files``.

        ``decode`` must be a module-level function (worker processes receive it); ``limit`` stops after that
        many files are decoded (a pass cut short on purpose, as a killed process would leave it); ``on_plan``
        hears what is about to be done before it starts. A DataError, before anything is written, when the disk
        cannot hold the new rows.
        """
        self.where.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.where / ".lock", timeout=LOCK_WAIT_S):
            meta = self._meta() or self._start_generation(None)
            images_path, log_path = self._paths(meta["generation"])
            entries = self._entries(log_path)
            pending = [f for f in files if not self._current(entries.get(f.relative), f)]
            plan = self._plan(len(files), len(pending), workers)
            if on_plan is not None:
                on_plan(plan)
            if plan.problem():
                raise DataError(plan.problem())
            pending = pending[:limit] if limit is not None else pending
            if pending:
                _Writer(self, images_path, log_path, entries, progress).run(pending, decode, plan.workers)
            live = [entries[f.relative] for f in files if self._current(entries.get(f.relative), f)]
            rows_in_file = 1 + max((e["row"] for e in entries.values() if "row" in e), default=-1)
            if rows_in_file - sum("row" in e for e in live) > max(len(live), COMPACT_MIN_LEFTOVERS):
                meta, entries = self._compact(meta, live)
                images_path, _ = self._paths(meta["generation"])
        return self._result(files, entries, images_path)

    def _start_generation(self, current: dict | None) -> dict:
        """A new generation's meta; files of any generation but ``current``'s are removed (another size or
        version, a compaction cut short). A fresh cache (``current`` None) writes its meta at once."""
        generation = (current or {}).get("generation", 0) + 1
        keep = {p.name for p in self._paths(current["generation"])} if current else set()
        for stale in [*self.where.glob("images-*.u8"), *self.where.glob("rows-*.jsonl")]:
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
        meta = {"version": VERSION, "size": self.size, "channels": self.channels, "generation": generation}
        if current is None:
            atomic_write_json(self.where / "meta.json", meta)
        return meta

    def _compact(self, meta: dict, live: list[dict]) -> tuple[dict, dict[str, dict]]:
        """Copy the live rows into a new generation, switch ``meta.json`` to it, then drop the old files."""
        old_images, old_log = self._paths(meta["generation"])
        new = self._start_generation(meta)
        images_path, log_path = self._paths(new["generation"])
        kept = [e for e in live if "row" in e]
        reader = DiskImages(old_images, self.row_shape, [e["row"] for e in kept])
        renumbered = {e["path"]: row for row, e in enumerate(kept)}
        entries = {e["path"]: {**e, "row": renumbered[e["path"]]} if "row" in e else e for e in live}
        with open(images_path, "wb") as out, open(log_path, "w") as log:
            out.writelines(reader[start:start + 1024].numpy().tobytes() for start in range(0, len(kept), 1024))
            log.writelines(json.dumps(e) + "\n" for e in entries.values())
            out.flush(), log.flush()
            os.fsync(out.fileno()), os.fsync(log.fileno())
        atomic_write_json(self.where / "meta.json", new)
        old_images.unlink(missing_ok=True)
        old_log.unlink(missing_ok=True)
        return new, entries

    def _result(self, files: Sequence[FolderFile], entries: dict[str, dict], images_path: Path) -> CachedFolder:
        rows, labels, names, skipped = [], [], [], []
        for f in files:
            entry = entries.get(f.relative)
            if not self._current(entry, f):
                continue  # not decoded yet (a pass cut short by ``limit``)
            if "row" in entry:
                rows.append(entry["row"])
                labels.append(f.label)
                names.append(f.relative)
            else:
                skipped.append(str(entry.get("skipped", f"{f.path}: skipped")))
        return CachedFolder(DiskImages(images_path, self.row_shape, rows, names=np.array(names, dtype=object)),
                            np.asarray(labels, dtype=np.int64), skipped)


class _Writer:
    """One update's decoding: chunks to workers, rows written in order, log lines after their rows are synced."""

    def __init__(self, cache: ImageCache, images_path: Path, log_path: Path, entries: dict[str, dict],
                 progress: Progress | None) -> None:
        self.cache, self.entries, self.progress = cache, entries, progress
        self.next_row = 1 + max((e["row"] for e in entries.values() if "row" in e), default=-1)
        self.images_fd = os.open(images_path, os.O_WRONLY | os.O_CREAT, 0o644)
        self.log = open(log_path, "a")  # noqa: SIM115 - closed in run()
        self.waiting: list[dict] = []
        self.total = 0
        self.synced_at = self.reported_at = time.monotonic()
        self.done = 0

    def run(self, pending: list[FolderFile], decode: Decode, workers: int) -> None:
        self.total = len(pending)
        chunks = [pending[i:i + CHUNK] for i in range(0, len(pending), CHUNK)]
        try:
            if workers <= 1:
                for chunk in chunks:
                    self._store(chunk, _decode_chunk(decode, [f.path for f in chunk], self.cache.size))
            else:
                self._run_pool(chunks, decode, workers)
        finally:
            self._sync()
            os.close(self.images_fd)
            self.log.close()
        self._report(force=True)

    def _run_pool(self, chunks: list[list[FolderFile]], decode: Decode, workers: int) -> None:
        import PIL.Image  # noqa: F401 - loaded before the fork, so each worker starts with it

        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            in_flight: deque[tuple[list[FolderFile], Future]] = deque()
            todo = iter(chunks)
            for chunk in todo:  # a bounded window keeps memory flat however large the folder
                in_flight.append((chunk, pool.submit(_decode_chunk, decode, [f.path for f in chunk],
                                                     self.cache.size)))
                if len(in_flight) >= 4 * workers:
                    done_chunk, future = in_flight.popleft()
                    self._store(done_chunk, future.result())
            while in_flight:
                done_chunk, future = in_flight.popleft()
                self._store(done_chunk, future.result())

    def _store(self, chunk: list[FolderFile], results: list[np.ndarray | str]) -> None:
        good = [(f, r) for f, r in zip(chunk, results, strict=True)
                if not isinstance(r, str) and r.shape == self.cache.row_shape and r.dtype == np.uint8]
        if good:
            block = np.ascontiguousarray(np.stack([r for _f, r in good]))
            os.pwrite(self.images_fd, block.tobytes(), self.next_row * self.cache.row_bytes)
        row = self.next_row
        for f, result in zip(chunk, results, strict=True):
            entry = {"path": f.relative, "bytes": f.bytes, "mtime_ns": f.mtime_ns}
            if isinstance(result, str):
                entry["skipped"] = result
            elif result.shape != self.cache.row_shape or result.dtype != np.uint8:
                entry["skipped"] = f"{f.path}: decoded to {result.dtype} {tuple(result.shape)}, not {self.cache.row_shape}"
            else:
                entry["row"], row = row, row + 1
            self.waiting.append(entry)
        self.next_row = row
        self.done += len(chunk)
        if time.monotonic() - self.synced_at >= SYNC_EVERY_S:
            self._sync()
        self._report()

    def _sync(self) -> None:
        """Rows reach the disk before the log names them: a crash never leaves a logged row unwritten."""
        if not self.waiting:
            return
        os.fdatasync(self.images_fd)
        self.log.write("".join(json.dumps(e) + "\n" for e in self.waiting))
        self.log.flush()
        os.fsync(self.log.fileno())
        self.entries.update((e["path"], e) for e in self.waiting)
        self.waiting.clear()
        self.synced_at = time.monotonic()

    def _report(self, force: bool = False) -> None:
        if self.progress is not None and (force or time.monotonic() - self.reported_at >= PROGRESS_EVERY_S):
            self.progress(self.done, self.total)
            self.reported_at = time.monotonic()


__all__ = ["CACHE_ENV", "CachePlan", "CachedFolder", "FolderFile", "ImageCache", "cache_root", "default_workers"]

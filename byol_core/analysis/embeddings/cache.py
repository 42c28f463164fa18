"""The on-disk cache of embeddings and layouts: content keys, one lock per file, atomic .npz files.

A damaged or outdated file reads as missing, so it is simply recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_write

CACHE_DIRNAME = "_cache"  # under the runs folder
CACHE_VERSION = 1  # bump when a cached file's content or layout changes


def content_key(payload: Any) -> str:
    """SHA-1 of ``payload`` as sorted JSON: equal payloads, equal keys, in any process."""
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_npz(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The named arrays of a cache file, or None when it is missing or unreadable (then recompute)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # FileNotFoundError included
        return None


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz atomically: readers never see half a file."""
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def pack_strings(strings: np.ndarray | list[str]) -> np.ndarray:
    """Strings as one uint8 array (UTF-8, NUL-separated: no file path holds a NUL) for an .npz: a fraction of
    NumPy's fixed-width unicode at 200k paths, and read back without pickle."""
    return np.frombuffer("\0".join(str(s) for s in strings).encode("utf-8", "surrogatepass"), dtype=np.uint8)


def unpack_strings(packed: np.ndarray, count: int) -> np.ndarray | None:
    """What :func:`pack_strings` packed, as an object array of str; None when it does not hold ``count`` strings
    (a damaged file: the caller falls back as if they were missing)."""
    if count == 0:
        return np.empty(0, dtype=object)
    try:
        strings = np.asarray(packed, dtype=np.uint8).tobytes().decode("utf-8", "surrogatepass").split("\0")
    except UnicodeDecodeError:
        return None
    return np.array(strings, dtype=object) if len(strings) == count else None


_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def file_lock(name: str) -> threading.Lock:
    """One lock per cache file: two threads asking for the same file compute it once."""
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(name, threading.Lock())

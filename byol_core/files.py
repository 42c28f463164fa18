"""Safe file I/O shared by the run store, caches and exports.

Atomic writes go to a uniquely named temporary file in the target's folder, then ``os.replace``
it into place: a reader (another process, a crash half-way) never sees half a file, and two
writers never share a temporary name. JSON Lines reading keeps every complete object line and
skips anything else (a torn last line after a crash, a stray value), so one bad line never hides
the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

LOCK_POLL_S = 0.02  # how often a waiting process tries a busy lock again


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` with a binary file handle, then move the result to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def exclusive_lock(path: str | Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created when missing) for the block: one holder at a time
    across processes and threads alike (each call opens its own file), released by the OS if the holder dies.

    A TimeoutError names the file when another holder keeps it longer than ``timeout`` seconds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} stayed locked by another process for {timeout:g} s; "
                                       "try again in a moment.") from None
                time.sleep(LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    import torch  # local: this module is also used where torch is not needed

    atomic_write(path, lambda fh: torch.save(obj, fh))


def parse_jsonl(data: bytes | str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines text; lines that are not a complete object are skipped."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    events = []
    for line in data.splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events


def read_json_object(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(object, None)``, or ``(None, reason)`` when the file is missing, unreadable or not an object."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path.name} cannot be read ({exc})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno})"
    if not isinstance(value, dict):
        return None, f"{path.name} holds {type(value).__name__} {text.strip()[:40]!r}, not a JSON object"
    return value, None

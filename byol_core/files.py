"""Safe file I/O shared by the run store, caches and exports.

Atomic writes go to a uniquely named temporary file in the target's folder, then ``os.replace``
it into place: a reader (another process, a crash half-way) never sees half a file, and two
writers never share a temporary name. JSON Lines reading keeps every complete object line and
skips anything else (a torn last line after a crash, a stray value), so one bad line never hides
the rest. A write that fails for want of disk space is a :class:`DiskFullError` whose one line names
the folder and its free space (torch's own word for it is "unexpected pos").
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .text import json_nesting, size_text

MAX_RUN_FILE_DEPTH = 64  # our own JSON files nest a few levels; a deeper one was damaged or planted
LOCK_POLL_S = 0.02  # how often a waiting process tries a busy lock again
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError, ValueError):
    """A write failed for want of space; the one-line message names the folder and its free space.

    An OSError (ENOSPC) to code that handles failed writes, and a ValueError to the CLI, which prints it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC


def free_space(folder: str | Path) -> str:
    """The free space of the disk holding ``folder``, for people (e.g. ``4.0 KB``); "unknown" when unreadable."""
    try:
        return size_text(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown"


def disk_full(exc: BaseException, folder: str | Path) -> DiskFullError | None:
    """A :class:`DiskFullError` naming ``folder`` when ``exc`` (or what caused it) is a full disk or quota, else None.

    torch reports a failed write as ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``
    with the OSError only as its context, so the whole chain is searched.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if (isinstance(cause, OSError) and cause.errno in _FULL_ERRNOS) or "No space left on device" in str(cause):
            return DiskFullError(f"no space left on the disk holding {folder} ({free_space(folder)} free); "
                                 "free some space there")
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` with a binary file handle, then move the result to ``path`` atomically.

    On any failure the temporary file is removed and ``path`` keeps what it held; a full disk is a
    :class:`DiskFullError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise disk_full(exc, path.parent) or exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        full = disk_full(exc, path.parent) if isinstance(exc, Exception) else None
        if full is not None:
            raise full from exc
        raise


@contextlib.contextmanager
def exclusive_lock(path: str | Path, timeout: float = 60.0, make_folder: bool = True) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created when missing) for the block: one holder at a time
    across processes and threads alike (each call opens its own file), released by the OS if the holder dies.

    A TimeoutError names the file when another holder keeps it longer than ``timeout`` seconds. With
    ``make_folder=False`` a missing folder is a FileNotFoundError instead of being made (a lock inside a
    folder that someone may delete must not bring it back).
    """
    path = Path(path)
    if make_folder:
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
    if json_nesting(text) > MAX_RUN_FILE_DEPTH:  # deep enough JSON breaks the parser itself (RecursionError)
        return None, f"{path.name} is nested more than {MAX_RUN_FILE_DEPTH} levels deep, not a file we wrote"
    try:
        value = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and numbers with more digits than Python converts
        return None, f"{path.name} is not valid JSON ({getattr(exc, 'msg', exc)} at line {getattr(exc, 'lineno', '?')})"
    if not isinstance(value, dict):
        return None, f"{path.name} holds {type(value).__name__} {text.strip()[:40]!r}, not a JSON object"
    return value, None

"""Upload folders on disk: listed with their disk use, written and removed one at a time, never half-read.

Each complete upload is ``<root>/uploads/<digest>/`` (see :mod:`.uploads`, which writes them) with a hidden
manifest of what it holds; temporary folders start with a dot. Whether an upload may go is not decided
here: only the lab knows which runs use it (:mod:`byol_core.lab.uploads_in_use`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..files import exclusive_lock
from .folder import IMAGE_EXTENSIONS

KEEP_UNUSED_UPLOADS = 5          # uploads no run uses: the lab keeps the newest few when a new one arrives
STALE_PARTIAL_S = 3600           # a temporary folder this old was left by a crash, not a writer
LOCK_TIMEOUT_S = 60.0            # how long a write or a removal waits for another one to finish
MANIFEST = ".upload.json"        # in each upload folder (hidden: the loader skips it): images, classes, skips


class UploadError(ValueError):
    """An upload cannot be used; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class StoredUpload:
    """One upload folder on disk, as the Data page lists it."""

    folder: Path
    images: int
    bytes: int                 # what its files take on disk
    modified: float            # when it was last uploaded (a repeated upload counts)


def uploads_dir(root: str | Path = "data") -> Path:
    return Path(root) / "uploads"


@contextlib.contextmanager
def uploads_lock(root: str | Path = "data") -> Iterator[None]:
    """One writer or remover of upload folders at a time, across processes (not re-entrant: take it once)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(uploads_dir(root) / ".lock", LOCK_TIMEOUT_S))
        except TimeoutError as exc:
            raise UploadError(f"{exc} (another upload or removal is under way)") from None
        yield


def _disk_use(folder: Path) -> tuple[int, int]:
    """(image files, bytes of all files) below ``folder``."""
    images = size = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                size += os.stat(os.path.join(dirpath, name)).st_size
                images += Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith(".")
    return images, size


def list_uploads(root: str | Path = "data") -> list[StoredUpload]:
    """Every complete upload folder under ``<root>/uploads``, newest first."""
    uploads = uploads_dir(root)
    found = []
    for folder in uploads.iterdir() if uploads.is_dir() else ():
        if folder.is_dir() and not folder.name.startswith("."):
            with contextlib.suppress(OSError):  # removed meanwhile
                modified = folder.stat().st_mtime
                found.append(StoredUpload(folder, *_disk_use(folder), modified))
    return sorted(found, key=lambda u: u.modified, reverse=True)


def remove_upload(folder: str | Path, root: str | Path = "data") -> None:
    """Remove one upload folder; hold :func:`uploads_lock` around deciding to and doing it.

    Moved aside first (one rename), so no reader meets half a folder.
    """
    folder = Path(folder)
    uploads = uploads_dir(root)
    if folder.parent.resolve() != uploads.resolve() or folder.name.startswith(".") or not folder.is_dir():
        raise UploadError(f"{str(folder)!r} is not an upload folder in {str(uploads)!r}; nothing was removed.")
    trash = uploads / f".removing-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        folder.rename(trash)
    except OSError as exc:
        raise UploadError(f"could not remove the upload {folder.name} ({exc}); check that {str(uploads)!r} "
                          "is writable.") from exc
    shutil.rmtree(trash, ignore_errors=True)


def read_manifest(folder: Path) -> dict | None:
    """The manifest the upload was written with; None when missing or damaged (older uploads have none)."""
    try:
        value = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(value, dict) and isinstance(value.get("images"), int)
          and isinstance(value.get("classes"), list) and isinstance(value.get("skipped"), list))
    return value if ok else None


def remove_stale_partials(uploads: Path) -> None:
    for partial in uploads.glob(".partial-*"):  # left by a crash half-way through a write
        try:
            if time.time() - partial.stat().st_mtime > STALE_PARTIAL_S:
                shutil.rmtree(partial, ignore_errors=True)
        except OSError:
            pass

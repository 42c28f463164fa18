"""Uploaded images on disk: a folder the folder loader reads, with class labels when the upload has them.

Three shapes of upload, one layout: ``<root>/uploads/<digest>/<class>/<file>`` (class folders, which
:mod:`~byol_core.data.folder` reads as labels) or ``<root>/uploads/<digest>/<file>`` (unlabelled):

- :func:`save_uploads`: files without labels;
- :func:`save_class_uploads`: one group of files per class name the person typed;
- :func:`extract_class_zip`: a zip of class folders (one wrapping folder is unwrapped).

The folder is named by the content, written under a temporary name and renamed into place, so the same
upload is written once and a half-written one is never read. Every upload is capped (files, bytes, a
zip's entries, counted from its central directory before any entry is read, and each image's pixels,
read from its header: larger images are left out and listed); names are made safe (nothing from an
upload ever decides a path outside its folder) and short enough in UTF-8 bytes for any file system.

Nothing here removes a complete upload on its own: only the lab knows which runs use one
(:mod:`byol_core.lab.uploads_in_use` keeps those, and removes the others on request). :func:`list_uploads`,
:func:`uploads_lock` and :func:`remove_upload` are what it works with.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
import struct
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from ..files import atomic_write_json
from .folder import IMAGE_EXTENSIONS, oversize_reason
from .upload_store import (
    KEEP_UNUSED_UPLOADS,
    MANIFEST,
    StoredUpload,
    UploadError,
    list_uploads,
    read_manifest,
    remove_stale_partials,
    remove_upload,
    uploads_dir,
    uploads_lock,
)

__all__ = ["IMAGE_TYPES", "KEEP_UNUSED_UPLOADS", "MAX_UPLOAD_BYTES", "MAX_UPLOAD_FILES", "MAX_ZIP_ENTRIES",
           "SavedUpload", "StoredUpload", "UploadError", "extract_class_zip", "list_uploads", "remove_upload",
           "safe_class_name", "safe_file_name", "save_class_uploads", "save_uploads", "uploads_dir", "uploads_lock",
           "zip_entry_count"]

MAX_UPLOAD_BYTES = 200 * 2**20   # per upload: a few thousand photos; more belongs in a folder on disk
# 200 MB hold a few thousand photos; far more files than that are tiny ones, each a zip entry, a file on disk
# and a decode: this bounds that work (a folder on disk has no count cap, only its cache's disk space).
MAX_UPLOAD_FILES = 50_000
MAX_ZIP_ENTRIES = 3 * MAX_UPLOAD_FILES  # images, their folders and macOS metadata (__MACOSX/._x) together
MAX_NAME_CHARS = 100             # longer names are shortened, with a short hash of the whole name
MAX_NAME_BYTES = 200             # ... and so are names longer in UTF-8 (file systems stop at 255 bytes)
IMAGE_TYPES = tuple(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))  # for file pickers
_CHUNK = 2**20
_MORE = "For more images, copy them into a folder on this machine and choose 'an image folder on this machine'."


class UploadLike(Protocol):
    """What an uploaded file offers (Streamlit's UploadedFile does): a name and its bytes."""

    name: str

    def getvalue(self) -> bytes: ...


@dataclass(frozen=True)
class SavedUpload:
    """Where an upload landed: the folder for ``DataConfig(name='folder')``, its classes, images and skips."""

    folder: Path
    classes: tuple[str, ...]   # empty for an unlabelled upload
    images: int
    skipped: tuple[str, ...]   # entries not written, each with the reason


@dataclass(frozen=True)
class _Entry:
    class_dir: str             # "" for an unlabelled image (top level)
    name: str                  # safe file name
    size: int                  # bytes it will take on disk (a zip's declared uncompressed size)
    open: Callable[[], IO[bytes]]
    source: str = ""           # the name in the upload, for messages


# --------------------------------------------------------------------------- names
def _plain(text: str, keep: str) -> str:
    return "".join(ch if ch.isalnum() or ch in keep else "_" for ch in text)


def _fit(text: str) -> str:
    """``text``, or when longer than MAX_NAME_CHARS characters or MAX_NAME_BYTES UTF-8 bytes (a CJK character
    takes 3) its start and a short hash of the whole, so two long names that share a start stay distinct.
    """
    if len(text) <= MAX_NAME_CHARS and len(text.encode()) <= MAX_NAME_BYTES:
        return text
    tag = "-" + hashlib.sha1(text.encode()).hexdigest()[:6]
    start = text[:MAX_NAME_CHARS - len(tag)].encode()[:MAX_NAME_BYTES - len(tag)].decode("utf-8", "ignore")
    return start.rstrip(" .") + tag


def safe_file_name(name: str, index: int) -> str:
    """A short, plain file name that keeps the extension (so the image type is still known)."""
    path = Path(Path(name.replace("\\", "/")).name or f"image-{index}.png")
    stem = _fit(_plain(path.stem, "-_.")) or "image"
    return f"{stem}{path.suffix.lower()[:8]}"


def safe_class_name(name: str) -> str:
    """A class name usable as one folder name: no separators, no leading dot (hidden folders are not read).

    Empty when nothing usable is left; the caller says which class that was.
    """
    return _fit(_plain(name.strip(), "-_. ").strip(" .")).strip()


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name-2`` ... when the class folder already holds that name (case-blind file systems too)."""
    stem, suffix = os.path.splitext(name)
    candidate, n = name, 1
    while candidate.casefold() in used:
        n += 1
        candidate = f"{stem}-{n}{suffix}"
    used.add(candidate.casefold())
    return candidate


def _class_dirs(named: Sequence[tuple[str, str]]) -> list[str]:
    """The safe folder name of each class, from ``(how the page refers to it, the class name)`` pairs.

    Raises when a name is empty once made safe, or two classes land on the same folder.
    """
    folders: list[str] = []
    seen: dict[str, str] = {}
    for where, raw in named:
        safe = safe_class_name(raw)
        if not safe:
            raise UploadError(f"{where} has no usable class name ({raw!r}): give it a name with letters or digits.")
        other = seen.get(safe.casefold())
        if other == raw:
            raise UploadError(f"the class name {raw!r} is used for two classes: give each class its own name, "
                              "or upload all its images under one.")
        if other is not None:
            raise UploadError(f"the class names {other!r} and {raw!r} become the same folder ({safe!r}) on disk: "
                              "give each class a name that differs in more than case or punctuation.")
        seen[safe.casefold()] = raw
        folders.append(safe)
    return folders


# --------------------------------------------------------------------------- file uploads
def _size(f: UploadLike) -> int:
    size = getattr(f, "size", None)
    return int(size) if isinstance(size, int) else len(f.getvalue())


def _file_entries(files: Sequence[UploadLike], class_dir: str, used: set[str],
                  skipped: list[str]) -> list[_Entry]:
    entries = []
    for i, f in enumerate(files):
        if not _is_image_name(f.name):
            skipped.append(f"{f.name}: not an image ({', '.join(IMAGE_TYPES)})")
            continue
        entries.append(_Entry(class_dir, _unique(safe_file_name(f.name, i), used), _size(f),
                              lambda f=f: io.BytesIO(f.getvalue()), f.name))
    return entries


def _digest_files(groups: Iterable[tuple[str, Sequence[UploadLike]]]) -> str:
    digest = hashlib.sha1()
    for class_dir, files in groups:
        for f in files:
            for part in (class_dir.encode(), b"\0", f.name.encode(), b"\0", f.getvalue()):
                digest.update(part)
    return digest.hexdigest()[:12]


def save_uploads(files: Sequence[UploadLike], root: str | Path = "data", *,
                 max_bytes: int = MAX_UPLOAD_BYTES) -> SavedUpload:
    """Write unlabelled uploaded images into one flat folder, for ``DataConfig(name='folder')``."""
    skipped: list[str] = []
    entries = _file_entries(files, "", set(), skipped)
    return _write(root, _digest_files([("", files)]), entries, skipped, max_bytes, what=f"these {len(files)} files")


def save_class_uploads(classes: Sequence[tuple[str, Sequence[UploadLike]]], root: str | Path = "data", *,
                       max_bytes: int = MAX_UPLOAD_BYTES) -> SavedUpload:
    """Write one folder per class: ``classes`` holds (class name as typed, its uploaded files) pairs.

    Groups without files are left out; a group with files but no usable name, or two names that become the
    same folder, raise :class:`UploadError` naming the class.
    """
    for number, (name, files) in enumerate(classes, start=1):
        if files and not name.strip():
            raise UploadError(f"class {number} has {len(files)} image(s) but no name: type its name in "
                              "'Class name' (the name becomes its label).")
    numbered = [(number, name, files) for number, (name, files) in enumerate(classes, start=1) if files]
    if not numbered:
        raise UploadError("no class has any images yet: upload images for at least one class.")
    folders = _class_dirs([(f"class {number}", name) for number, name, _ in numbered])
    skipped: list[str] = []
    entries: list[_Entry] = []
    for folder, (_, _, files) in zip(folders, numbered, strict=True):
        entries += _file_entries(files, folder, set(), skipped)
    digest = _digest_files((folder, files) for folder, (_, _, files) in zip(folders, numbered, strict=True))
    total = sum(len(files) for _, _, files in numbered)
    return _write(root, digest, entries, skipped, max_bytes, what=f"these {total} files")


# --------------------------------------------------------------------------- zip of class folders
_DRIVE = re.compile(r"^[A-Za-z]:")


def _entry_parts(name: str) -> tuple[str, ...] | None:
    """The folders and file name of a zip entry, or None when it points outside the zip's folder (zip-slip)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        return None
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    return None if ".." in parts else parts


def _unwrap(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Drop a folder that wraps everything (``photos/cats/x.png`` → ``cats/x.png``), as often as there is one."""
    while paths and all(len(p) >= 2 for p in paths) and len({p[0] for p in paths}) == 1:
        paths = [p[1:] for p in paths]
    return paths


def zip_entry_count(data: bytes, stop_after: int | None = None) -> int | None:
    """How many entries a zip holds, from its end record and central directory alone (ZIP64 too); None when
    no end record is found (zipfile then says what is wrong).

    zipfile builds an object per entry before anything can be checked (a million empty entries cost 600 MB
    and seconds), so this counts first: the entries the end record declares, and the central directory's
    headers walked without reading them (zipfile reads the directory by its size, not the declared count),
    stopping after ``stop_after``.
    """
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if end < 0 or end + 22 > len(data):
        return None
    _, _, _, _, declared, cd_size, _, _ = struct.unpack_from("<4s4H2LH", data, end)
    record = end
    if end >= 76 and data.startswith(b"PK\x06\x07", end - 20) and data.startswith(b"PK\x06\x06", end - 76):
        record = end - 76  # the ZIP64 end record, right before its locator
        declared, cd_size = struct.unpack_from("<2Q", data, record + 32)
    position, count = max(0, record - cd_size), 0
    while position + 46 <= record and data.startswith(b"PK\x01\x02", position):
        count += 1
        if stop_after is not None and count > stop_after:
            break
        name_len, extra_len, comment_len = struct.unpack_from("<3H", data, position + 28)
        position += 46 + name_len + extra_len + comment_len
    return max(declared, count)


def _open_zip(data: bytes) -> zipfile.ZipFile:
    count = zip_entry_count(data, stop_after=MAX_ZIP_ENTRIES)
    if count is not None and count > MAX_ZIP_ENTRIES:
        raise UploadError(f"the zip holds {count} entries; uploads are limited to {MAX_ZIP_ENTRIES} entries "
                          "(images, folders and other files together). Zip only the folders of images. " + _MORE)
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise UploadError(f"the uploaded file is not a readable zip ({exc}). Zip the class folders again "
                          "(one folder of images per class) and upload the new file.") from exc


def extract_class_zip(data: bytes, root: str | Path = "data", *, max_bytes: int = MAX_UPLOAD_BYTES) -> SavedUpload:
    """Unpack a zip of class folders (``cats/x.png``, ``dogs/y.jpg``) into an upload folder.

    A single folder wrapping all of them is unwrapped; images at the top level, or in one folder only,
    make an unlabelled set. Entries whose path leaves the zip's folder (``../x.png``, ``/etc/x.png``),
    non-images and encrypted entries are skipped and listed; macOS metadata (``__MACOSX``) and hidden
    files are ignored. ``max_bytes`` caps the images' uncompressed total.
    """
    with _open_zip(data) as archive:
        return _extract(archive, hashlib.sha1(b"zip\0" + data).hexdigest()[:12], root, max_bytes)


def _extract(archive: zipfile.ZipFile, digest: str, root: str | Path, max_bytes: int) -> SavedUpload:
    skipped: list[str] = []
    kept: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    for info in archive.infolist():
        if info.is_dir():
            continue
        parts = _entry_parts(info.filename)
        if parts is None:
            skipped.append(f"{info.filename}: its path leaves the zip's folder, not extracted")
        elif not parts or "__MACOSX" in parts or any(p.startswith(".") for p in parts):
            continue  # metadata and hidden files, never images a person meant
        elif not _is_image_name(parts[-1]):
            skipped.append(f"{info.filename}: not an image ({', '.join(IMAGE_TYPES)})")
        elif info.flag_bits & 0x1:
            skipped.append(f"{info.filename}: encrypted, not extracted (zip it without a password)")
        else:
            kept.append((info, parts))
    if not kept:
        shown = "; ".join(skipped[:3])
        raise UploadError(f"the zip holds no images ({', '.join(IMAGE_TYPES)})"
                          f"{': ' + shown if shown else ''}. Put one folder of images per class in it.")
    paths = _unwrap([parts for _, parts in kept])
    class_of = {p[0] for p in paths if len(p) >= 2}
    names = sorted(class_of)
    folders = dict(zip(names, _class_dirs([(f"the zip's folder {name!r}", name) for name in names]), strict=True))
    used: dict[str, set[str]] = {}
    entries = []
    for i, ((info, _), parts) in enumerate(zip(kept, paths, strict=True)):
        class_dir = folders[parts[0]] if len(parts) >= 2 else ""
        name = _unique(safe_file_name(parts[-1], i), used.setdefault(class_dir, set()))
        entries.append(_Entry(class_dir, name, info.file_size, lambda info=info: archive.open(info), info.filename))
    return _write(root, digest, entries, skipped, max_bytes, what="the zip's images (uncompressed)")


# --------------------------------------------------------------------------- writing
def _check_caps(entries: list[_Entry], max_bytes: int, what: str) -> None:
    total = sum(e.size for e in entries)
    if total > max_bytes:
        raise UploadError(f"{what} hold {total / 2**20:.0f} MB; uploads are limited to {max_bytes // 2**20} MB. "
                          + _MORE)
    if len(entries) > MAX_UPLOAD_FILES:
        raise UploadError(f"{what} are {len(entries)} images; uploads are limited to {MAX_UPLOAD_FILES}. " + _MORE)


def _copy(entry: _Entry, target: Path, budget: list[int]) -> None:
    """Copy one entry, counting bytes: a zip entry that inflates past its declared size stops the upload."""
    with entry.open() as src, open(target, "wb") as dst:
        while chunk := src.read(_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise UploadError("the upload unpacks to more bytes than it declares; it is damaged or built "
                                  "to fill the disk. Zip the images again.")
            dst.write(chunk)


def _fill(partial: Path, entries: list[_Entry], skipped: list[str], max_bytes: int) -> None:
    """Write the entries into ``partial``; those whose header declares too many pixels are removed and listed."""
    budget, kept = [max_bytes], []
    for entry in entries:
        target = partial / entry.class_dir / entry.name
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(entry, target, budget)
        if reason := oversize_reason(target):
            target.unlink()
            skipped.append(f"{entry.source or entry.name}: {reason}")
        else:
            kept.append(entry)
    if not kept:
        shown = "; ".join(skipped[:3])
        raise UploadError(f"none of the uploaded images can be used: {shown}{'; ...' if len(skipped) > 3 else ''}.")
    classes = sorted({e.class_dir for e in kept if e.class_dir})
    for empty in {e.class_dir for e in entries} - set(classes) - {""}:
        (partial / empty).rmdir()
    atomic_write_json(partial / MANIFEST, {"images": len(kept), "classes": classes, "skipped": skipped})


def _write_error(exc: OSError, uploads: Path) -> UploadError:
    if exc.errno == errno.ENAMETOOLONG:
        return UploadError(f"a class or file name of the upload is too long for this file system ({exc}); "
                           "shorten the names and upload again.")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UploadError(f"the disk holding {str(uploads)!r} is full ({exc}); free some disk space (the Data page "
                           "lists the uploads and deletes those you no longer need) or upload fewer images.")
    return UploadError(f"could not write the upload into {str(uploads)!r} ({exc}); check that the folder "
                       "is writable.")


def _write(root: str | Path, digest: str, entries: list[_Entry], skipped: list[str], max_bytes: int,
           what: str) -> SavedUpload:
    _check_caps(entries, max_bytes, what)
    if not entries:
        raise UploadError(f"none of the uploaded files is an image ({', '.join(IMAGE_TYPES)}).")
    uploads = uploads_dir(root)
    folder = uploads / digest
    with uploads_lock(root):
        if folder.is_dir():  # written whole or not at all (renamed into place), so an existing one is complete
            folder.touch()  # uploaded again: newest
            return _saved(folder, entries, skipped)
    remove_stale_partials(uploads)
    partial = uploads / f".partial-{digest}-{uuid.uuid4().hex[:8]}"
    try:
        _fill(partial, entries, skipped, max_bytes)
        with uploads_lock(root):
            if not folder.is_dir():  # else a twin upload won the race; its folder holds the same
                partial.rename(folder)
            folder.touch()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise UploadError(f"an entry of the zip could not be read ({exc}); the zip is damaged or uses a "
                          "compression this machine cannot read. Zip the images again.") from exc
    except OSError as exc:
        raise _write_error(exc, uploads) from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return _saved(folder, entries, skipped)


def _saved(folder: Path, entries: list[_Entry], skipped: list[str]) -> SavedUpload:
    """What the folder holds: its manifest (images left out for their size are listed there), else the entries."""
    manifest = read_manifest(folder)
    if manifest is None:  # written before manifests existed
        classes = tuple(sorted({e.class_dir for e in entries if e.class_dir}))
        return SavedUpload(folder=folder, classes=classes, images=len(entries), skipped=tuple(skipped))
    left_out = [s for s in manifest["skipped"] if s not in skipped]
    return SavedUpload(folder=folder, classes=tuple(manifest["classes"]), images=manifest["images"],
                       skipped=tuple(skipped + left_out))

"""Image folders as a data set: one subfolder per class, or a flat folder of unlabelled images.

Files are centre-cropped square and resized to ``data.folder_image_size``; unreadable ones are
skipped and listed (with the reason) in ``DataSplits.skipped_files``, and so are images over
:data:`MAX_IMAGE_PIXELS`: a few kB of PNG can declare 13000×13000 pixels (half a gigabyte decoded), so
the size is read from the header before anything is decoded. JPEGs are decoded reduced (PIL's ``draft``,
1/2 to 1/8 scale, still at least the target size), so only what is decoded counts. Decoded folders are
cached on disk beside the data so a new process does not decode them again.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..files import atomic_torch_save
from ..text import clipped
from .types import DataError, ImageSet, Progress, Source, as_image_set

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
MAX_IMAGE_PIXELS = 40_000_000  # per image, as decoded (120 MB as RGB): a big photo fits, a decompression bomb not
LARGEST_SIDE = 1024  # data.folder_image_size's maximum: JPEGs are checked at the draft scale this side allows
ENTRIES_PER_IMAGE = 20  # a listing gives up after this many directory entries per allowed image


def folder_source_key(cfg: DataConfig) -> tuple:
    """What decides a folder's decoded content; sizes and mtimes notice files added or replaced."""
    folder = _folder_path(cfg)
    listing = _list_folder(folder, cfg.max_folder_images)
    stamp = tuple((str(p), s.st_size, s.st_mtime_ns) for p, s in ((p, p.stat()) for p, _ in listing.files))
    return ("folder", str(folder), cfg.folder_image_size, stamp)


@dataclass(frozen=True)
class _Listing:
    classes: list[str]
    files: list[tuple[Path, int]]  # (path, label); label -1 when the folder has no class subfolders
    ignored: list[str]


def _folder_path(cfg: DataConfig) -> Path:
    folder = Path(os.path.expanduser(cfg.folder or "")).absolute()
    if _system_folder(folder) is not None:  # never walk /proc and the like, whoever asks (a page, a job)
        check_folder(cfg)
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise DataError(f"image folder {str(folder)!r} {what}. Set data.folder to a directory of "
                        f"images (optionally one subfolder per class).")
    return folder


SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))  # what the kernel shows as files: never images


def _system_folder(path: Path) -> Path | None:
    """The system folder (:data:`SYSTEM_FOLDERS`) that ``path`` is, or is inside of once links are followed."""
    real = path.resolve()
    return next((s for s in SYSTEM_FOLDERS if real == s or s in real.parents), None)


def _has_image(folder: Path, budget: int) -> bool:
    """Whether ``folder`` holds an image file outside hidden folders, looking at up to ``budget`` entries.

    True too when the budget runs out first: the loader then says what is wrong with so large a folder.
    """
    for root, dirs, files in os.walk(folder, followlinks=True):  # unreadable subfolders are passed over
        dirs[:] = [d for d in dirs if not d.startswith(".") and not  # nor links into /proc and the like
                   (os.path.islink(os.path.join(root, d)) and _system_folder(Path(root, d)))]
        if any(Path(f).suffix.lower() in IMAGE_EXTENSIONS and not f.startswith(".") and
               os.path.isfile(os.path.join(root, f)) for f in files):
            return True
        budget -= len(dirs) + len(files)
        if budget <= 0:
            return True
    return False


def folder_problem(data: DataConfig) -> str | None:
    """Why ``data``'s image folder cannot serve (one line naming data.folder and what to do); None when it can,
    or when ``data`` is no image folder."""
    if data.name != "folder":
        return None
    folder = Path(os.path.expanduser(data.folder or "")).absolute()
    head = f"data.folder = {clipped(data.folder, 200)}"
    try:
        system = _system_folder(folder)
        if system is not None:
            return (f"{head} is inside {system}, a system folder of the operating system, not images; set "
                    "data.folder to a folder of your images.")
        if not folder.is_dir():
            what = "is not a directory" if folder.exists() else "does not exist"
            return f"{head} {what}; set data.folder to a folder of images (optionally one subfolder per class)."
        if not os.access(folder, os.R_OK | os.X_OK):
            return f"{head} cannot be read (no permission); give this user read access, or copy the images elsewhere."
        if not _has_image(folder, ENTRIES_PER_IMAGE * data.max_folder_images):
            return (f"{head} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); put images in it, or one "
                    "subfolder of images per class.")
    except (OSError, RuntimeError) as exc:  # a name too long, a link loop
        why = getattr(exc, "strerror", None) or exc
        return f"{head} cannot be looked at ({why}); set data.folder to a folder of images."
    return None


def check_folder(data: DataConfig) -> None:
    """A DataError when ``data``'s image folder cannot serve (:func:`folder_problem`); called before a run folder
    is made, so a wrong folder never leaves a failed run behind."""
    problem = folder_problem(data)
    if problem:
        raise DataError(problem)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


class _Budget:
    """How many images (and directory entries) a listing may still meet before it gives up, and says why.

    Pointing data.folder at the wrong place (a home folder, /usr) would otherwise walk and decode for
    minutes and fill memory and disk; a folder of images is never that large on this product's scale.
    """

    def __init__(self, folder: Path, max_images: int) -> None:
        self.folder, self.max_images = folder, max_images
        self.images, self.entries = 0, 0

    def visit(self, is_image: bool) -> None:
        self.entries += 1
        self.images += is_image
        if self.images > self.max_images:
            raise DataError(f"image folder {str(self.folder)!r} holds more than {self.max_images} images; point "
                            "data.folder at a smaller folder, or raise data.max_folder_images if you mean it.")
        if self.entries > ENTRIES_PER_IMAGE * self.max_images:
            raise DataError(f"image folder {str(self.folder)!r} holds more than {self.entries - 1} files and "
                            "folders, most of them not images; point data.folder at the folder of your images.")


def _images_under(directory: Path, budget: _Budget) -> list[Path]:
    found = []
    for p in directory.rglob("*"):
        # Hidden folders (.ipynb_checkpoints, .git, ...) never hold training images.
        image = _is_image(p) and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        budget.visit(image)
        if image:
            found.append(p)
    return sorted(found)


def _list_folder(folder: Path, max_images: int) -> _Listing:
    budget = _Budget(folder, max_images)
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class = [(d.name, _images_under(d, budget)) for d in subdirs]
    per_class = [(name, files) for name, files in per_class if files]
    top_level = []
    for p in folder.iterdir():
        budget.visit(_is_image(p))
        if _is_image(p):
            top_level.append(p)
    top_level.sort()
    if not per_class:
        return _Listing(classes=[], files=[(p, -1) for p in top_level], ignored=[])
    files = [(p, label) for label, (_, paths) in enumerate(per_class) for p in paths]
    ignored = [f"{p}: not inside a class subfolder, ignored" for p in top_level]
    return _Listing(classes=[name for name, _ in per_class], files=files, ignored=ignored)


class ImageTooLargeError(ValueError):
    """An image would decode to more than :data:`MAX_IMAGE_PIXELS` pixels; the message says its size."""


def _checked_draft(img, size: int) -> None:
    """Ask for the smallest decode that is still >= ``size`` (JPEG only), then refuse it when still too large."""
    img.draft("RGB", (size, size))
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(f"{width}×{height} pixels ({width * height / 1e6:.0f} MP), over the limit of "
                                 f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP per image, so not decoded (an image bomb, or a "
                                 f"scan far larger than training needs); shrink it below the limit to use it")


def oversize_reason(path: Path, size: int = LARGEST_SIDE) -> str | None:
    """Why ``path`` would decode to too many pixels at target side ``size``, from its header alone; else None.

    Files PIL cannot open are not judged here: the folder loader skips them with their own reason.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            _checked_draft(img, size)
    except ImageTooLargeError as exc:
        return str(exc)
    except Image.DecompressionBombError as exc:  # PIL's own cap (2 × its MAX_IMAGE_PIXELS) met on opening
        return f"{exc} (over the limit of {MAX_IMAGE_PIXELS / 1e6:.0f} MP per image, so not decoded)"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return None


def _decode(path: Path, size: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        # Only the header is read so far: the size is checked before any pixel is decoded. For JPEGs the
        # draft also decodes at a reduced scale (still >= size), much faster for big photos.
        _checked_draft(img, size)
        img = img.convert("RGB")
        img = ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _decode_or_reason(path: Path, size: int) -> np.ndarray | str:
    try:
        return _decode(path, size)
    except ImageTooLargeError as exc:
        return f"{path}: {exc}"
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt files; none is fatal
        return f"{path}: {type(exc).__name__}: {exc}"


def _folder_cache_path(cfg: DataConfig, key: tuple) -> Path:
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
    return Path(cfg.root).expanduser() / "cache" / f"folder-{digest}.pt"


def load_folder(cfg: DataConfig, report: Progress) -> Source:
    """Decode a folder once; later loads (other processes too) read the decoded uint8 tensors from disk.

    The cache file's name hashes every file's path, size and mtime and the target size, so any
    change to the folder makes a new one.
    """
    cache = _folder_cache_path(cfg, folder_source_key(cfg))
    if cache.is_file():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            report("Read decoded images from the cache", 0.9)
            return Source(classes=list(saved["classes"]), train=ImageSet(saved["images"], saved["labels"]),
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


def _decode_folder(cfg: DataConfig, report: Progress) -> Source:
    folder = _folder_path(cfg)
    listing = _list_folder(folder, cfg.max_folder_images)
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
    return Source(classes=listing.classes, train=as_image_set(np.stack(images), labels), test=None,
                   skipped_files=tuple(skipped))

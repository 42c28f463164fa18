"""Image folders as a data set: one subfolder per class, or a flat folder of unlabelled images.

Files are centre-cropped square and resized to ``data.folder_image_size``; unreadable ones are
skipped and listed (with the reason) in ``DataSplits.skipped_files``, and so are images over
:data:`MAX_IMAGE_PIXELS`: a few kB of PNG can declare 13000×13000 pixels (half a gigabyte decoded), so
the size is read from the header before anything is decoded. JPEGs are decoded reduced (PIL's ``draft``,
1/2 to 1/8 scale, still at least the target size), so only what is decoded counts.

Each image is decoded once, in worker processes, into the folder's disk cache (:mod:`.image_cache`); the
images then stay there and training reads its batches from it (:class:`~.disk_images.DiskImages`). There
is no cap on the number of images (``data.max_folder_images`` sets one if wanted): the cache must fit the
free disk, which is checked before the first pass, with its size and duration in the message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..text import clipped
from .image_cache import CachePlan, FolderFile, ImageCache
from .types import DataError, ImageSet, Progress, Source

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
MAX_IMAGE_PIXELS = 40_000_000  # per image, as decoded (120 MB as RGB): a big photo fits, a decompression bomb not
LARGEST_SIDE = 1024  # data.folder_image_size's maximum: JPEGs are checked at the draft scale this side allows
ENTRIES_PER_IMAGE = 20  # a listing gives up after this many directory entries per image
# Entries any listing may meet before the share of images in them is judged (a 20,000-image folder's worth):
# pointing data.folder at a home folder or /usr then stops early, with the reason.
MIN_ENTRIES_BUDGET = ENTRIES_PER_IMAGE * 20_000


def folder_source_key(cfg: DataConfig) -> tuple:
    """What decides a folder's decoded content; sizes and mtimes notice files added or replaced (and make the
    in-process cache of :func:`~.loading.load_data` look at the disk cache again)."""
    folder = _folder_path(cfg)
    listing = _list_folder(folder, cfg.max_folder_images)
    _keyed.clear()
    _keyed[str(folder), cfg.max_folder_images] = (time.monotonic(), listing)
    stamp = tuple((f.relative, f.label, f.bytes, f.mtime_ns) for f in listing.files)
    return ("folder", str(folder), cfg.folder_image_size, stamp)


@dataclass(frozen=True)
class _Listing:
    classes: list[str]
    files: list[FolderFile]  # label -1 when the folder has no class subfolders
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
        if not _has_image(folder, ENTRIES_PER_IMAGE * data.max_folder_images if data.max_folder_images
                          else MIN_ENTRIES_BUDGET):
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
    """How many images (with ``data.max_folder_images``) and directory entries a listing may still meet before
    it gives up, and says why.

    Pointing data.folder at the wrong place (a home folder, /usr) would otherwise walk and decode for
    minutes and fill the disk: past :data:`MIN_ENTRIES_BUDGET` entries, at most :data:`ENTRIES_PER_IMAGE`
    entries per image found so far are walked. The number of images is not capped unless asked for.
    """

    def __init__(self, folder: Path, max_images: int | None) -> None:
        self.folder, self.max_images = folder, max_images
        self.images, self.entries = 0, 0

    def visit(self, is_image: bool) -> None:
        self.entries += 1
        self.images += is_image
        if self.max_images is not None and self.images > self.max_images:
            raise DataError(f"image folder {str(self.folder)!r} holds more than {self.max_images} images; point "
                            "data.folder at a smaller folder, or raise data.max_folder_images (or unset it: no "
                            "cap) if you mean it.")
        allowed = (ENTRIES_PER_IMAGE * self.max_images if self.max_images is not None
                   else max(MIN_ENTRIES_BUDGET, ENTRIES_PER_IMAGE * self.images))
        if self.entries > allowed:
            raise DataError(f"image folder {str(self.folder)!r} holds more than {self.entries - 1} files and "
                            "folders, most of them not images; point data.folder at the folder of your images.")


def _images_under(directory: str, folder: str, label: int, budget: _Budget) -> list[FolderFile]:
    """The images under ``directory`` with their size and mtime, in one walk (``os.scandir``: tens of thousands
    of files a second). Hidden files and folders (.git, .ipynb_checkpoints, ...) never hold training images;
    folders reached twice through links are walked once."""
    found, stack, seen = [], [directory], {os.path.realpath(directory)}
    while stack:
        try:
            with os.scandir(stack.pop()) as listing:
                entries = list(listing)
        except OSError:  # an unreadable subfolder is passed over, as before
            continue
        for entry in entries:
            image = False
            try:
                if entry.name.startswith("."):
                    pass
                elif entry.is_dir():
                    real = os.path.realpath(entry.path)
                    if real not in seen and _system_folder(Path(real)) is None:
                        seen.add(real)
                        stack.append(entry.path)
                elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    stat = entry.stat()
                    found.append(FolderFile(entry.path, entry.path[len(folder) + 1:].replace(os.sep, "/"),
                                            label, stat.st_size, stat.st_mtime_ns))
                    image = True
            except OSError:  # gone meanwhile, or a broken link
                pass
            budget.visit(image)
    # As paths sort, part by part: "\0" sorts before any character, as the end of a part does.
    return sorted(found, key=lambda f: f.relative.replace("/", "\0"))


# load_data lists a folder for its key, then loads it: the load takes the key's listing (once, when fresh) instead
# of walking a large folder a second time.
_LISTING_REUSE_S = 2.0
_keyed: dict[tuple[str, int | None], tuple[float, _Listing]] = {}


def _keyed_listing(folder: Path, max_images: int | None) -> _Listing | None:
    listed_at, listing = _keyed.pop((str(folder), max_images), (float("-inf"), None))
    return listing if time.monotonic() - listed_at <= _LISTING_REUSE_S else None


def _list_folder(folder: Path, max_images: int | None) -> _Listing:
    budget = _Budget(folder, max_images)
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class: list[tuple[str, list[FolderFile]]] = []
    for d in subdirs:  # labels count the classes that hold images only (a folder of no images is no class)
        found = _images_under(str(d), str(folder), len(per_class), budget)
        if found:
            per_class.append((d.name, found))
    top_level = []
    for p in folder.iterdir():
        budget.visit(_is_image(p))
        if _is_image(p):
            top_level.append(p)
    top_level.sort()
    if not per_class:
        return _Listing(classes=[], files=_images_at(top_level, str(folder)), ignored=[])
    files = [f for _, found in per_class for f in found]
    ignored = [f"{p}: not inside a class subfolder, ignored" for p in top_level]
    return _Listing(classes=[name for name, _ in per_class], files=files, ignored=ignored)


def _images_at(paths: list[Path], folder: str) -> list[FolderFile]:
    out = []
    for p in paths:
        try:
            stat = p.stat()
        except OSError:
            continue
        out.append(FolderFile(str(p), str(p)[len(folder) + 1:], -1, stat.st_size, stat.st_mtime_ns))
    return out


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


def _cache(cfg: DataConfig, folder: Path) -> ImageCache:
    return ImageCache.for_folder(folder, cfg.folder_image_size, cfg.root)


def folder_cache_plan(cfg: DataConfig) -> CachePlan:
    """What loading ``cfg``'s folder would decode, the disk it needs and has, and how long it takes: what a
    page shows before it starts the first pass (``describe()``, ``problem()``)."""
    folder = _folder_path(cfg)
    return _cache(cfg, folder).plan(_list_folder(folder, cfg.max_folder_images).files)


def _progress(report: Progress) -> Callable[[int, int], None]:
    """The cache's (done, total) as the loader's (message, fraction), with the rate and the time left."""
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-6)
        left = f", about {(total - done) / rate:.0f} s left" if 0 < done < total else ""
        report(f"Decoding images into the cache: {done:,}/{total:,} ({rate:.0f} images/s{left})",
               0.05 + 0.85 * done / max(total, 1))

    return show


def load_folder(cfg: DataConfig, report: Progress, workers: int | None = None) -> Source:
    """The folder's images from its disk cache, decoding (in ``workers`` processes) only what is not in it yet.

    The images stay on disk (:class:`~.disk_images.DiskImages`); a DataError names what to do when the folder
    holds no readable image or the disk cannot hold the cache.
    """
    folder = _folder_path(cfg)
    listing = _keyed_listing(folder, cfg.max_folder_images) or _list_folder(folder, cfg.max_folder_images)
    if not listing.files:
        raise DataError(f"image folder {str(folder)!r} holds no images "
                        f"({', '.join(sorted(IMAGE_EXTENSIONS))}). Put images in it, or one "
                        f"subfolder of images per class.")
    files = listing.files
    cache = _cache(cfg, folder)

    def say(plan: CachePlan) -> None:
        said = plan.describe()
        report(said[0].upper() + said[1:], 0.05)

    cached = cache.update(files, _decode_or_reason, _progress(report), workers, on_plan=say)
    skipped = [*listing.ignored, *cached.skipped]
    if not len(cached.images):
        shown = "; ".join(skipped[:3])
        raise DataError(f"image folder {str(folder)!r}: none of its {len(files)} image files could be read "
                        f"({shown}{'; ...' if len(skipped) > 3 else ''}). Check that they are "
                        f"valid images.")
    report("Reading the images from the cache", 0.9)
    return Source(classes=listing.classes, train=ImageSet(cached.images, torch.from_numpy(cached.labels)),
                  test=None, skipped_files=tuple(skipped))

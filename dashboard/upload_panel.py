"""The Data page's uploads: images uploaded as a data set, and the uploads kept on this machine.

An upload is unpacked once per session and upload (keyed by Streamlit's file ids): a rerun, which any
widget causes, reuses the result or the refusal instead of unpacking again. After a new upload the
uploads no run uses are cleaned up beyond the newest few; the list below the pickers shows every
upload, what it takes on disk and the runs that use it, and deletes those no run uses.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import streamlit as st

from byol_core.config import DataConfig
from byol_core.data import uploads
from byol_core.lab.run_store import RunStore
from byol_core.lab.uploads_in_use import delete_upload, remove_unused_uploads, upload_uses
from dashboard import state

UPLOAD_MODES = {"none": "No labels", "classes": "One upload per class", "zip": "A zip of class folders"}
MAX_UPLOAD_CLASSES = 50
UPLOAD_ROOT = "data"             # where the upload functions keep uploads by default (<root>/uploads)
SAVED_KEY = "data.upload_saved"  # (the upload's key, its SavedUpload or the refusal's message)
SHOWN_RUNS = 3


def _store() -> RunStore:
    return RunStore(state.runs_dir())


def _file_key(f: uploads.UploadLike) -> str:
    return getattr(f, "file_id", None) or hashlib.sha1(f.getvalue()).hexdigest()


def _chosen_folder() -> Path | None:
    cfg = state.get_data_cfg()
    return Path(cfg.folder).resolve() if cfg.name == "folder" and cfg.folder else None


def _saved_once(key: Hashable, save: Callable[[], uploads.SavedUpload]) -> tuple[uploads.SavedUpload | None, bool]:
    """``save()``'s result for this upload, kept for the session; a refusal is kept (and shown) too: (None, True).

    Redone only for another upload, or when the folder it wrote was deleted meanwhile.
    """
    memo = st.session_state.get(SAVED_KEY)
    stale = memo is None or memo[0] != key or (
        isinstance(memo[1], uploads.SavedUpload) and not memo[1].folder.is_dir())
    if stale:
        try:
            result: uploads.SavedUpload | str = save()
        except state.USER_ERRORS as exc:
            result = f"{exc}"
        memo = (key, result)
        st.session_state[SAVED_KEY] = memo
        if isinstance(result, uploads.SavedUpload):
            with state.user_errors():
                chosen = _chosen_folder()
                remove_unused_uploads(_store(), UPLOAD_ROOT, also_keep=[result.folder] + ([chosen] if chosen else []))
    if isinstance(memo[1], str):
        st.error(memo[1], icon=":material/error:")
        return None, True
    return memo[1], False


def _class_uploads() -> list[tuple[str, list]]:
    """One class name and one file picker per class; (name as typed, its files) for each."""
    count = st.number_input("Classes", min_value=1, max_value=MAX_UPLOAD_CLASSES, value=2, step=1,
                            key="data.upload_classes", help="How many classes to upload; each gets its own name.")
    groups = []
    for i in range(int(count)):
        with st.container(border=True):
            name = st.text_input("Class name", key=f"data.upload_class.{i}", placeholder=f"class {i + 1}",
                                 help="The label of the images below (also their folder's name on disk).")
            files = st.file_uploader(f"Images of class {i + 1}", accept_multiple_files=True,
                                     type=list(uploads.IMAGE_TYPES), key=f"data.upload_files.{i}")
        groups.append((name, files or []))
    return groups


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """"1 file", "2 files": ``n`` and the noun in the right number."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def skipped_lines(skipped: Sequence[str], folder: str | None) -> list[str]:
    """Skipped-file entries ("<path>: reason") with every path relative to the data set's ``folder``.

    The folder loader (and PIL's message in the reason) name files by their full path on the server; the person
    chose the folder, so the part inside it is what identifies a file, and the server's layout stays off the page.
    """
    if not folder:
        return list(skipped)
    base = Path(os.path.expanduser(folder))
    # The longer spelling first, so a resolved path that extends the given one is cut whole.
    prefixes = sorted({str(p) + os.sep for p in (base.absolute(), base.resolve())}, key=len, reverse=True)
    lines = []
    for entry in skipped:
        for prefix in prefixes:
            entry = entry.replace(prefix, "")
        lines.append(entry)
    return lines


def upload_choice() -> tuple[DataConfig | None, bool]:
    """Uploaded images saved as a folder (labelled by class when the upload says so), or None until there are any;
    and whether the upload was refused (the reason is shown)."""
    mode = st.radio("Labels", list(UPLOAD_MODES), format_func=UPLOAD_MODES.get, key="data.upload_mode",
                    horizontal=True, help="Accuracy numbers (supervised runs, probes, kNN) need class labels; "
                                          "BYOL pretraining does not.")
    saved: uploads.SavedUpload | None = None
    refused = False
    if mode == "none":
        files = st.file_uploader("Images (unlabelled)", accept_multiple_files=True, type=list(uploads.IMAGE_TYPES),
                                 key="data.upload")
        if files:
            saved, refused = _saved_once(("none", tuple(map(_file_key, files))), lambda: uploads.save_uploads(files))
    elif mode == "classes":
        groups = _class_uploads()
        if any(files for _, files in groups):
            key = ("classes", tuple((name, tuple(map(_file_key, files))) for name, files in groups))
            saved, refused = _saved_once(key, lambda: uploads.save_class_uploads(groups))
    else:
        archive = st.file_uploader("A zip with one folder of images per class", type=["zip"], key="data.upload_zip",
                                   help="cats/1.png, dogs/2.jpg … (one folder around them is fine). Up to "
                                        f"{uploads.MAX_UPLOAD_BYTES // 2**20} MB unpacked, "
                                        f"{uploads.MAX_ZIP_ENTRIES} entries.")
        if archive:
            saved, refused = _saved_once(("zip", _file_key(archive)),
                                         lambda: uploads.extract_class_zip(archive.getvalue()))
    if saved is not None:
        _describe(saved, mode)
    _uploads_on_disk(saved.folder if saved is not None else None)
    return (DataConfig(name="folder", folder=str(saved.folder)) if saved is not None else None), refused


def _describe(saved: uploads.SavedUpload, mode: str) -> None:
    if mode == "classes" and len(saved.classes) == 1:
        st.info("One class only: accuracy numbers need at least two. Add another class (Classes above).",
                icon=":material/info:")
    elif mode == "zip" and not saved.classes:
        st.info("No class folders in the zip (its images sit at the top, or in one folder only), so they carry no "
                "labels: fine for BYOL pretraining; for accuracy numbers put one folder per class in it.",
                icon=":material/info:")
    if saved.skipped:
        with st.expander(f"{counted(len(saved.skipped), 'uploaded file')} not used"):
            st.code("\n".join(saved.skipped[:50]), language=None)


# --------------------------------------------------------------------------- uploads on disk
def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _runs_text(runs: tuple[str, ...]) -> str:
    if not runs:
        return "used by no run"
    more = f" and {len(runs) - SHOWN_RUNS} more" if len(runs) > SHOWN_RUNS else ""
    return f"used by {counted(len(runs), 'run')}: " + ", ".join(f"`{r}`" for r in runs[:SHOWN_RUNS]) + more


def _uploads_on_disk(picked: Path | None) -> None:
    """Every upload kept here: its images, disk use and runs; Delete for those no run uses.

    ``picked``: the upload the pickers above hold (it becomes the data set; deleted, it would be written again).
    """
    uses = upload_uses(_store(), UPLOAD_ROOT)
    if not uses:
        return
    chosen = [f for f in (_chosen_folder(), picked and picked.resolve()) if f is not None]
    total = sum(use.upload.bytes for use in uses)
    with st.expander(f"Uploads on this machine: {counted(len(uses), 'upload')}, {_size(total)}"):
        st.caption(f"An upload is kept while any run uses it (deleting it would leave those runs unable to resume, "
                   f"be evaluated or show embeddings: delete the runs first). Of the others, the newest "
                   f"{uploads.KEEP_UNUSED_UPLOADS} are kept when a new upload arrives.")
        for use in uses:
            upload = use.upload
            here = any(upload.folder.resolve() in (folder, *folder.parents) for folder in chosen)
            why = ("runs use it: delete them first" if use.runs else
                   "it is the data set chosen here: choose or upload another first" if here else None)
            text, button = st.columns([5, 1], vertical_alignment="center")
            images = counted(upload.images, "image")
            text.markdown(f"**{upload.folder.name}** · {images} · {_size(upload.bytes)} · uploaded "
                          f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(upload.modified))} · "
                          f"{_runs_text(use.runs)}")
            if button.button("Delete", key=f"data.delete_upload.{upload.folder.name}", disabled=why is not None,
                             help=why or "Removes its images from this machine.", icon=":material/delete:"):
                with state.user_errors():
                    delete_upload(_store(), upload.folder, UPLOAD_ROOT)
                    st.rerun()

"""Which runs use which upload: an upload stays while any run's ``data.folder`` is in it.

A run refers to an upload when its config's ``data.folder`` resolves to the upload's folder or a folder
inside it (relative paths resolve from the current folder, as the loader reads them). Runs are read from
their ``config.json`` as stored, so a config that no longer validates still keeps its upload.

- :func:`upload_uses`: every upload on disk with the runs that use it (the Data page's list);
- :func:`delete_upload`: removes one on request, and refuses, naming the runs, while any run uses it:
  a run whose images are gone can no longer resume, be evaluated or show its embeddings, and an
  upload is cheap to keep, so a person deletes those runs first when they mean it;
- :func:`remove_unused_uploads`: the automatic clean-up after a new upload, which only ever removes
  uploads no run refers to, oldest first, keeping the newest few.

Deciding and removing happen under :func:`~byol_core.data.uploads.uploads_lock`, so two pages never
remove the same folder twice, and an upload written meanwhile is never half-listed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..data.uploads import (
    KEEP_UNUSED_UPLOADS,
    StoredUpload,
    UploadError,
    list_uploads,
    remove_upload,
    uploads_lock,
)
from .run_store import DamagedRunError, RunStore

SHOWN_RUNS = 5  # runs named in a refusal; the rest are counted


@dataclass(frozen=True)
class UploadUse:
    """One upload on disk and the ids of the runs that use it (newest first)."""

    upload: StoredUpload
    runs: tuple[str, ...]


def _resolved(folder: str | Path) -> Path:
    return Path(os.path.expanduser(str(folder))).resolve()


def _run_folders(store: RunStore) -> list[tuple[str, Path]]:
    """(run id, its resolved data.folder) for every run whose config names a folder."""
    found = []
    for run in store.list():
        try:
            data = run.read_record()["config"].get("data")
        except DamagedRunError:  # config.json unreadable: nothing says which images it used
            continue
        folder = data.get("folder") if isinstance(data, dict) else None
        if isinstance(folder, str) and folder.strip():
            found.append((run.id, _resolved(folder.strip())))
    return found


def _users(upload: Path, run_folders: list[tuple[str, Path]]) -> tuple[str, ...]:
    target = _resolved(upload)
    return tuple(run_id for run_id, folder in run_folders if folder == target or target in folder.parents)


def upload_uses(store: RunStore, root: str | Path = "data") -> list[UploadUse]:
    """Every upload under ``<root>/uploads``, newest first, with the runs in ``store`` that use it."""
    run_folders = _run_folders(store)
    return [UploadUse(upload, _users(upload.folder, run_folders)) for upload in list_uploads(root)]


def runs_using(store: RunStore, folder: str | Path) -> tuple[str, ...]:
    """The ids of the runs in ``store`` whose data.folder is ``folder`` or inside it."""
    return _users(Path(folder), _run_folders(store))


def _named(runs: tuple[str, ...]) -> str:
    shown = ", ".join(runs[:SHOWN_RUNS])
    return shown + (f" and {len(runs) - SHOWN_RUNS} more" if len(runs) > SHOWN_RUNS else "")


def delete_upload(store: RunStore, folder: str | Path, root: str | Path = "data") -> None:
    """Remove one upload; an UploadError naming the runs, and nothing removed, while any run uses it."""
    with uploads_lock(root):
        runs = runs_using(store, folder)
        if runs:
            raise UploadError(f"upload {Path(folder).name} is used by {len(runs)} run(s): {_named(runs)}. Without "
                              "it they could not resume, be evaluated or show embeddings; delete those runs "
                              "first if you mean to delete it.")
        remove_upload(folder, root)


def remove_unused_uploads(store: RunStore, root: str | Path = "data", keep: int = KEEP_UNUSED_UPLOADS,
                          also_keep: Iterable[str | Path] = ()) -> list[Path]:
    """Remove the uploads no run uses beyond the newest ``keep`` of them; ``also_keep``: folders a page
    has chosen but not trained on yet. Returns the folders removed.
    """
    kept = {_resolved(f) for f in also_keep}
    removed = []
    with uploads_lock(root):
        unused = [use.upload.folder for use in upload_uses(store, root)
                  if not use.runs and _resolved(use.upload.folder) not in kept]
        for folder in unused[keep:]:
            remove_upload(folder, root)
            removed.append(folder)
    return removed

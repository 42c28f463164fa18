"""A person's notes on a run: its name, a free-text note and whether it is archived.

They live in the run folder's own ``annotations.json``, apart from ``config.json`` (what ran) and
``status.json`` (what the trainer reports), so editing them never races a training process and never
changes what a run was. An edit is a read-modify-write under ``annotations.lock`` (a cross-process
``flock``), so two dashboards or a dashboard and the CLI editing at once never undo each other's
field. Reading never raises: a missing or damaged file reads as no annotations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..files import atomic_write_json, exclusive_lock, read_json_object
from .run_store import Run

MAX_NAME_CHARS = 120
MAX_NOTE_CHARS = 10_000
LOCK_TIMEOUT_S = 30.0  # an edit is milliseconds; a holder this slow is stuck


@dataclass(frozen=True)
class Annotations:
    """What a person wrote about a run; the defaults are what a run without annotations shows."""

    name: str = ""
    note: str = ""
    archived: bool = False


def read_annotations(run: Run) -> Annotations:
    """The run's annotations; defaults for a missing or damaged file and for any field of the wrong type."""
    data, _problem = read_json_object(run.annotations_path)
    if data is None:
        return Annotations()
    defaults = Annotations()
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(Annotations):
        value = data.get(f.name)
        fields[f.name] = value if isinstance(value, type(getattr(defaults, f.name))) else getattr(defaults, f.name)
    return Annotations(**fields)


def clean_name(name: str) -> str:
    """A run's display name on one line, or a ValueError that says what to shorten."""
    name = " ".join(str(name).split())  # newlines and runs of spaces would break tables and select boxes
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"the name is {len(name)} characters long; keep it to {MAX_NAME_CHARS} "
                         "(put the rest in the note).")
    return name


def clean_note(note: str) -> str:
    note = str(note).strip()
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"the note is {len(note)} characters long; keep it to {MAX_NOTE_CHARS}.")
    return note


def annotate(run: Run, *, name: str | None = None, note: str | None = None,
             archived: bool | None = None) -> Annotations:
    """Change the given fields (the others are kept) and write the file atomically; returns the result."""
    if not run.config_path.is_file():
        raise FileNotFoundError(f"run {run.id} no longer exists (was it deleted?); pick another run.")
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = clean_name(name)
    if note is not None:
        changes["note"] = clean_note(note)
    if archived is not None:
        changes["archived"] = bool(archived)
    gone = FileNotFoundError(f"run {run.id} no longer exists (was it deleted?); pick another run.")
    try:
        # Across processes and threads alike: the file is read and replaced by one editor at a time.
        with exclusive_lock(run.annotations_lock_path, timeout=LOCK_TIMEOUT_S, make_folder=False):
            if not run.config_path.is_file():  # deleted while we waited
                raise gone
            result = dataclasses.replace(read_annotations(run), **changes)
            atomic_write_json(run.annotations_path, dataclasses.asdict(result))
    except FileNotFoundError:
        raise gone from None
    except TimeoutError as exc:  # another editor is stuck: say so in one line, change nothing
        raise ValueError(f"run {run.id}: {exc}") from None
    return result

"""The run store: one folder per run under ``runs/``.

``runs/<id>/``
  ``config.json``     the full ExperimentConfig plus the run's kind and options
  ``metrics.jsonl``   append-only metric events, one JSON object a line, flushed per line
  ``status.json``     state, progress and results, replaced atomically
  ``checkpoint.pt``   latest training state (loaded with ``weights_only=True``)
  ``encoder.pt``      the backbone's plain ``state_dict`` (torchvision-compatible)
  ``stop.request``    present while someone has asked the run's worker process to stop
  ``worker.log``      a worker process's own output (tracebacks of hard crashes)
  ``skipped_files.txt`` files of the data set that could not be read, with the reason
  ``owner.lock``      locked (flock) by the one process that trains the run; the OS frees it on exit
  ``predictions.npz`` the class a classifier or kNN gave each test image, with the true labels
  ``annotations.json`` a person's name, note and archived flag for the run (:mod:`byol_core.lab.annotations`)
  ``annotations.lock`` locked (flock) while one editor reads and replaces annotations.json
  ``.space.reserve``  a little disk space the trainer holds back, freed to record a full disk in status.json

Files are replaced through hidden ``.<name>.<random>.tmp`` copies (:func:`byol_core.files.atomic_write`);
those of the trainer's own files that a killed process left behind are removed by the next holder of
``owner.lock``, when it claims the run and when it lets go of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError, ExperimentConfig, from_dict, to_dict
from ..files import (
    atomic_torch_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    disk_full,
    parse_jsonl,
    read_json_object,
)
from ..text import clipped


class DamagedRunError(ValueError):
    """A run folder's file cannot be read or does not hold what it should; the message names it."""


class RunBusyError(ValueError):
    """Another process (or thread) is already training this run."""


# States a run can be in; "interrupted" is derived when a "running" run's process is gone.
STATES = ("queued", "running", "finished", "stopped", "failed", "interrupted")
# Files only the run's trainer (the holder of owner.lock) writes: its leftover temporary copies are its own.
TRAINER_FILES = ("checkpoint.pt", "encoder.pt", "predictions.npz", "metrics.jsonl")
# Held back while training so a full disk can still be recorded: status.json and a line of metrics.
RESERVE_BYTES = 64 * 1024


def _json_safe(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None  # NaN is not JSON
    return value


@dataclass
class Run:
    """One run's folder and the operations on it; safe to use from a training thread."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.path.name

    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    status_path = property(lambda self: self.path / "status.json")
    checkpoint_path = property(lambda self: self.path / "checkpoint.pt")
    encoder_path = property(lambda self: self.path / "encoder.pt")
    stop_request_path = property(lambda self: self.path / "stop.request")
    owner_lock_path = property(lambda self: self.path / "owner.lock")
    skipped_files_path = property(lambda self: self.path / "skipped_files.txt")
    worker_log_path = property(lambda self: self.path / "worker.log")
    annotations_path = property(lambda self: self.path / "annotations.json")
    annotations_lock_path = property(lambda self: self.path / "annotations.lock")
    predictions_path = property(lambda self: self.path / "predictions.npz")
    space_reserve_path = property(lambda self: self.path / ".space.reserve")

    # -- ownership: one trainer at a time
    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the run's exclusive lock while training it; a RunBusyError when someone else holds it.

        ``flock`` on a file of the run folder: taken atomically, so of two processes (or two threads,
        each with its own open file) started at the same moment exactly one trains; and released by the
        operating system when the holder exits, however it dies.

        The holder removes the temporary copies a killed trainer left (and holds back a little disk space,
        :meth:`release_space`) from the moment it claims the run until it lets go.
        """
        fd = os.open(self.owner_lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
                raise RunBusyError(f"run {self.id} is already being trained (by process {holder}); wait for it "
                                   "to end or stop it first.") from None
            with contextlib.suppress(OSError):  # the pid only names the holder in messages; a full disk may refuse it
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._remove_dead_copies()
            self._reserve_space()
            try:
                yield
            finally:
                self.release_space()
                self._remove_dead_copies()
        finally:
            os.close(fd)  # closing the file releases the lock

    def _remove_dead_copies(self) -> None:
        """Remove the temporary copies of the trainer's files (only the lock holder may: it is their only writer)."""
        for name in TRAINER_FILES:
            for tmp in self.path.glob(f".{name}.*.tmp"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def _reserve_space(self) -> None:
        """Hold back :data:`RESERVE_BYTES` of disk (best effort: a disk already full gets none)."""
        try:
            with open(self.space_reserve_path, "wb") as fh:
                fh.write(bytes(RESERVE_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            self.release_space()

    def release_space(self) -> None:
        """Give the held-back space to the disk: done when the disk is full, so the run's end can still be written."""
        with contextlib.suppress(OSError):
            self.space_reserve_path.unlink(missing_ok=True)

    def claimed(self) -> bool:
        """Whether some process holds the run's lock right now."""
        try:
            fd = os.open(self.owner_lock_path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # -- stop requests (the channel to a worker in another process)
    def request_stop(self) -> None:
        self.stop_request_path.touch()

    def stop_requested(self) -> bool:
        return self.stop_request_path.exists()

    def clear_stop_request(self) -> None:
        self.stop_request_path.unlink(missing_ok=True)

    # -- config
    def write_config(self, cfg: ExperimentConfig, kind: str, options: dict[str, Any] | None = None,
                     stage: str | None = None) -> None:
        record = {"kind": kind, "options": options or {}, "config": to_dict(cfg)}
        if stage is not None:
            record["stage"] = stage
        atomic_write_json(self.config_path, record)

    def read_record(self) -> dict[str, Any]:
        """config.json as stored (kind, stage, options, config); a DamagedRunError says what is wrong."""
        record, problem = read_json_object(self.config_path)
        if record is None:
            raise DamagedRunError(f"run {self.id}: {problem}.")
        if not isinstance(record.get("config"), dict):
            raise DamagedRunError(f"run {self.id}: config.json has no \"config\" object.")
        return record

    def read_config(self) -> tuple[ExperimentConfig, str, dict[str, Any]]:
        """The run's config, kind and options; a DamagedRunError when config.json cannot be used."""
        record = self.read_record()
        try:
            cfg = from_dict(ExperimentConfig, record["config"])
        except ConfigError as exc:
            raise DamagedRunError(f"run {self.id}: config.json does not hold a valid config ({exc}).") from exc
        options = record.get("options") if isinstance(record.get("options"), dict) else {}
        return cfg, str(record.get("kind", "")), options

    # -- metrics
    def log(self, event: dict[str, Any]) -> None:
        """Append one event to metrics.jsonl and flush, so a crash loses at most this line."""
        line = json.dumps({k: _json_safe(v) for k, v in event.items()}, default=str)
        try:
            with self._lock, open(self.metrics_path, "a") as fh:
                fh.write(line + "\n")
                fh.flush()
        except OSError as exc:
            raise disk_full(exc, self.path) or exc

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every complete event; a torn last line (crash mid-write) is ignored."""
        try:
            return parse_jsonl(self.metrics_path.read_bytes())
        except FileNotFoundError:
            return []

    def keep_metrics_up_to(self, step: int) -> int:
        """Drop the events logged after ``step`` (work lost since the checkpoint) and a torn last line, atomically;
        returns how many events were dropped."""
        try:
            data = self.metrics_path.read_bytes()
        except FileNotFoundError:
            return 0
        events = parse_jsonl(data)
        kept = [e for e in events if not isinstance(e.get("step"), (int, float)) or e["step"] <= step]
        torn = bool(data) and not data.endswith(b"\n")  # a line cut short: the next one would join it
        if len(kept) != len(events) or torn:
            with self._lock:
                data = "".join(json.dumps(e, default=str) + "\n" for e in kept).encode()
                atomic_write_bytes(self.metrics_path, data)
        return len(events) - len(kept)

    # -- status
    def set_status(self, state: str, **fields: Any) -> dict[str, Any]:
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}; expected one of {STATES}.")
        with self._lock:
            status = self._read_status_file()
            status.update({k: _json_safe(v) for k, v in fields.items()})
            status.update(state=state, updated=time.time(), pid=os.getpid())
            atomic_write_json(self.status_path, status)
        return status

    def _read_status_file(self) -> dict[str, Any]:
        return read_json_object(self.status_path)[0] or {}

    def read_status(self) -> dict[str, Any]:
        """The stored status; a 'running' run whose process is gone reads as 'interrupted'."""
        return self.read_status_checked()[0]

    def read_status_checked(self) -> tuple[dict[str, Any], str | None]:
        """The status as :meth:`read_status` gives it, and why status.json is unusable (None when it is fine)."""
        status, problem = read_json_object(self.status_path)
        if status is None:
            return {}, problem if self.status_path.exists() else None
        state = status.get("state")
        if state == "running" and not self.claimed():
            status["state"] = "interrupted"  # nobody holds the lock: its trainer is gone
        elif state == "queued" and status.get("pid") != os.getpid() and not pid_alive(status.get("pid")):
            status["state"] = "interrupted"  # queued by a process that died before starting it
        return status, None

    # -- checkpoints and encoder
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_torch_save(self.checkpoint_path, state)

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        if not self.checkpoint_path.exists():
            raise FileNotFoundError(f"run {self.id} has no checkpoint to resume from ({self.checkpoint_path}).")
        state = self._load_tensor_file(self.checkpoint_path, map_location,
                                       "delete it to train this run again from step 0, or delete the run")
        if not isinstance(state, dict) or not {"model", "optimizer", "step"} <= set(state):
            raise DamagedRunError(f"run {self.id}: checkpoint.pt does not hold a training checkpoint; delete it to "
                                  "train this run again from step 0, or delete the run.")
        return state

    def save_encoder(self, state_dict: dict[str, torch.Tensor]) -> None:
        atomic_torch_save(self.encoder_path, state_dict)

    def load_encoder(self) -> dict[str, torch.Tensor]:
        if not self.encoder_path.exists():
            raise FileNotFoundError(f"run {self.id} has no exported encoder yet ({self.encoder_path}); "
                                    "let the run finish or export it first.")
        state = self._load_tensor_file(self.encoder_path, "cpu",
                                       "resume the run if it can be resumed, or train a new one")
        if not isinstance(state, dict):
            raise DamagedRunError(f"run {self.id}: encoder.pt does not hold a state_dict; train a new run.")
        return state

    # -- test predictions (for the error analysis and comparisons paired over test images)
    def save_predictions(self, predicted: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> None:
        """Write the class each test image was given (classifier or kNN), beside the true labels and class names."""
        arrays = {"predicted": predicted.cpu().numpy().astype(np.int64),
                  "labels": labels.cpu().numpy().astype(np.int64), "classes": np.asarray(classes, dtype=str)}
        atomic_write(self.predictions_path, lambda fh: np.savez(fh, **arrays))

    def load_predictions(self) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
        """Predicted classes, true labels and class names; None when the run saved none or the file is damaged."""
        try:  # a missing file is an OSError too
            with np.load(self.predictions_path, allow_pickle=False) as data:
                return (data["predicted"].astype(np.int64), data["labels"].astype(np.int64),
                        [str(c) for c in data["classes"]])
        except (OSError, ValueError, KeyError):
            return None

    def load_correct(self) -> np.ndarray | None:
        """Whether each test image was predicted right (bool, from predictions.npz); None when it has none that fit."""
        return None if (p := self.load_predictions()) is None or p[0].shape != p[1].shape else p[0] == p[1]

    def _load_tensor_file(self, path: Path, map_location: str | torch.device, remedy: str) -> Any:
        """``torch.load`` of our own file, with one clear line naming the file when it is damaged."""
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - zip, pickle and tensor errors all mean a damaged file
            # Never pass on torch's advice to load with weights_only=False: that would run a damaged
            # (or tampered) file's pickled code.
            # torch's own message is long and carries that advice, so only its kind is named.
            raise DamagedRunError(f"run {self.id}: {path.name} is damaged and cannot be read "
                                  f"({type(exc).__name__}); {remedy}.") from None


def pid_alive(pid: object) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_SAFE = re.compile(r"[^a-z0-9-]+")
_SAFE_KIND = re.compile(r"[a-z0-9-]+")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a folder name inside the store: no path, no '..'
MAX_ID_CHARS = 255  # the longest folder name file systems take


def _link_in(path: Path) -> str | None:
    """The name of ``path`` when it is a link, or of a link among its files; None when there is none."""
    if path.is_symlink():
        return path.name
    try:
        return next((p.name for p in path.iterdir() if p.is_symlink()), None)
    except OSError:  # not there (or not a folder): nothing is read or written through it
        return None


class RunStore:
    """Creates, finds and lists runs below one root folder."""

    def __init__(self, root: str | Path = "runs") -> None:
        self.root = Path(root)

    def create(self, kind: str, cfg: ExperimentConfig, options: dict[str, Any] | None = None,
               stage: str | None = None) -> Run:
        if not _SAFE_KIND.fullmatch(kind):
            raise ValueError(f"run kind {kind!r} must be lower-case letters, digits and '-'.")
        self.root.mkdir(parents=True, exist_ok=True)
        slug = _SAFE.sub("-", cfg.name.lower()).strip("-")[:24] or "run"
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{slug}-{secrets.token_hex(2)}"
        path = self.root / run_id
        try:
            path.mkdir()
        except OSError as exc:
            raise disk_full(exc, self.root) or exc
        run = Run(path)
        try:
            run.write_config(cfg, kind, options, stage)
            run.set_status("queued", kind=kind, name=cfg.name, created=time.time())
        except OSError as exc:  # e.g. a full disk: no half-made run folder is left to list as damaged
            shutil.rmtree(path, ignore_errors=True)
            raise disk_full(exc, self.root) or exc
        return run

    def get(self, run_id: str) -> Run:
        """The run ``run_id``; a FileNotFoundError that says why when there is no such run, or when the folder
        is a link or holds one (a run is never read or written through a link, which could lead anywhere)."""
        if not run_id or _SAFE_ID.fullmatch(run_id) is None or len(run_id) > MAX_ID_CHARS:
            why = f"give the name of a folder inside {self.root}/, not a path"
            if _SAFE_ID.fullmatch(run_id or ""):
                why = f"it is {len(run_id)} characters long, too long for a folder name (at most {MAX_ID_CHARS})"
            raise FileNotFoundError(f"{clipped(run_id, 40)} is not a run id: {why} (see `python -m byol_core runs`).")
        path = self.root / run_id
        link = _link_in(path)
        if link == run_id:
            raise FileNotFoundError(f"{run_id!r} is a link, not a run folder of {self.root}/: runs are never read or "
                                    f"written through links; move the run folder itself into {self.root}/.")
        if link is not None:
            raise FileNotFoundError(f"run {run_id!r} is not a run folder of {self.root}/ as made here: its {link} is "
                                    "a link, which could read or write outside it; remove the link.")
        if not (path / "config.json").is_file():
            known = ", ".join(r.id for r in self.list()[:5]) or "none yet"
            raise FileNotFoundError(f"no run {run_id!r} in {self.root}/ (recent runs: {known}).")
        return Run(path)

    def find(self, run_id: str) -> Run | None:
        """:meth:`get` for a caller that only needs to know: None where ``get`` would refuse, and without
        listing the store for an error message (summaries look up every run's source run)."""
        if not run_id or _SAFE_ID.fullmatch(run_id) is None or len(run_id) > MAX_ID_CHARS:
            return None
        path = self.root / run_id
        if not (path / "config.json").is_file() or _link_in(path) is not None:
            return None
        return Run(path)

    def list(self) -> list[Run]:
        """Runs, newest first; a folder that is a link or holds one is none (:meth:`get` says why)."""
        if not self.root.is_dir():
            return []
        runs = [Run(p) for p in self.root.iterdir() if (p / "config.json").is_file() and _link_in(p) is None]
        return sorted(runs, key=lambda r: r.id, reverse=True)

    def delete(self, run_id: str) -> None:
        """Remove a run's folder; a RunBusyError, and nothing removed, while the run is queued or training."""
        run = self.get(run_id)
        if run.read_status().get("state") == "queued":  # its job waits for a slot and would start on a missing folder
            raise RunBusyError(f"run {run_id} is queued to train; stop its job first, then delete it.")
        try:
            # Holding the trainer's lock while the folder goes: no trainer can start on it half-way.
            with run.claim():
                # Moved aside first (one atomic rename), so a half-removed folder is never listed as a damaged run.
                trash = self.root / f".deleting-{run_id}-{secrets.token_hex(2)}"
                run.path.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
        except RunBusyError:
            raise RunBusyError(f"run {run_id} is being trained right now; stop it first (Stop on its job card, or "
                               "Ctrl-C where it runs), then delete it.") from None
        except OSError as exc:  # e.g. no permission on runs/, or deleted by someone else meanwhile
            raise ValueError(f"run {run_id} could not be deleted: {exc}.") from exc

    def __iter__(self) -> Iterator[Run]:
        return iter(self.list())

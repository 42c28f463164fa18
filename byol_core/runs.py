"""The run store: one folder per run under ``runs/``.

``runs/<id>/``
  ``config.json``     the full ExperimentConfig plus the run's kind and options
  ``metrics.jsonl``   append-only metric events, one JSON object a line, flushed per line
  ``status.json``     state, progress and results, replaced atomically
  ``checkpoint.pt``   latest training state (loaded with ``weights_only=True``)
  ``encoder.pt``      the backbone's plain ``state_dict`` (torchvision-compatible)
  ``stop.request``    present while someone has asked the run's worker process to stop
  ``worker.log``      a worker process's own output (tracebacks of hard crashes)
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, ExperimentConfig, from_dict, to_dict
from .files import atomic_torch_save, atomic_write_json, parse_jsonl, read_json_object


class DamagedRunError(ValueError):
    """A run folder's file cannot be read or does not hold what it should; the message names it."""


# States a run can be in; "interrupted" is derived when a "running" run's process is gone.
STATES = ("queued", "running", "finished", "stopped", "failed", "interrupted")


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
    worker_log_path = property(lambda self: self.path / "worker.log")

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
        with self._lock, open(self.metrics_path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every complete event; a torn last line (crash mid-write) is ignored."""
        try:
            return parse_jsonl(self.metrics_path.read_bytes())
        except FileNotFoundError:
            return []

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
        status, _problem = read_json_object(self.status_path)
        return status if status is not None else {}

    def read_status(self) -> dict[str, Any]:
        """The stored status; a 'running' run whose process is gone reads as 'interrupted'."""
        status = self._read_status_file()
        state = status.get("state")
        if state == "running" and not _owner_alive(status, self.id):
            status["state"] = "interrupted"
        elif state == "queued" and status.get("pid") != os.getpid() and not _owner_alive(status, self.id):
            status["state"] = "interrupted"  # queued by a process that died before starting it
        return status

    # -- checkpoints and encoder
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_torch_save(self.checkpoint_path, state)

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        if not self.checkpoint_path.exists():
            raise FileNotFoundError(f"run {self.id} has no checkpoint to resume from ({self.checkpoint_path}).")
        return torch.load(self.checkpoint_path, map_location=map_location, weights_only=True)

    def save_encoder(self, state_dict: dict[str, torch.Tensor]) -> None:
        atomic_torch_save(self.encoder_path, state_dict)

    def load_encoder(self) -> dict[str, torch.Tensor]:
        if not self.encoder_path.exists():
            raise FileNotFoundError(f"run {self.id} has no exported encoder yet ({self.encoder_path}); "
                                    "let the run finish or export it first.")
        return torch.load(self.encoder_path, map_location="cpu", weights_only=True)


# Runs being executed by this process (see runner); a run of ours that is not here has died with
# its thread, however recent its last status write.
_ACTIVE_HERE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


def mark_active(run_id: str, active: bool) -> None:
    with _ACTIVE_LOCK:
        if active:
            _ACTIVE_HERE.add(run_id)
        else:
            _ACTIVE_HERE.discard(run_id)


def _owner_alive(status: dict[str, Any], run_id: str) -> bool:
    pid = status.get("pid")
    if pid == os.getpid():
        with _ACTIVE_LOCK:
            return run_id in _ACTIVE_HERE
    return pid_alive(pid)


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
        path.mkdir()
        run = Run(path)
        run.write_config(cfg, kind, options, stage)
        run.set_status("queued", kind=kind, name=cfg.name, created=time.time())
        return run

    def get(self, run_id: str) -> Run:
        path = self.root / run_id
        if not (path / "config.json").is_file():
            known = ", ".join(r.id for r in self.list()[:5]) or "none yet"
            raise FileNotFoundError(f"no run {run_id!r} in {self.root}/ (recent runs: {known}).")
        return Run(path)

    def list(self) -> list[Run]:
        """Runs, newest first."""
        if not self.root.is_dir():
            return []
        runs = [Run(p) for p in self.root.iterdir() if (p / "config.json").is_file()]
        return sorted(runs, key=lambda r: r.id, reverse=True)

    def __iter__(self) -> Iterator[Run]:
        return iter(self.list())

"""What the pages show about runs: one summary per run folder, read from the RunStore.

The store is the source of truth (it survives dashboard restarts); the JobManager only adds
live progress for jobs of this process.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass, field
from typing import Any

from byol_core.config import ExperimentConfig
from byol_core.runs import Run, RunStore

# Job kinds the Train page offers, with the words a newcomer understands.
JOB_TITLES = {
    "byol": "BYOL pretraining (self-supervised, no labels)",
    "scratch": "Supervised from scratch (baseline)",
    "finetune": "Fine-tune a BYOL encoder (supervised)",
    "linear": "Linear probe on a frozen BYOL encoder",
}
RESUMABLE = ("stopped", "interrupted")
ENCODER_KINDS = ("byol", "supervised", "linear")


@dataclass
class RunInfo:
    id: str
    kind: str                 # run store kind: byol, supervised, linear, evaluate, experiment
    mode: str                 # job kind: byol, scratch, finetune, linear, evaluate, experiment
    name: str
    dataset: str
    label_fraction: float
    state: str
    from_run: str | None
    cfg: ExperimentConfig
    status: dict[str, Any] = field(default_factory=dict)
    has_encoder: bool = False

    @property
    def results(self) -> dict[str, Any]:
        return self.status.get("results") or {}

    @property
    def error(self) -> str | None:
        return self.status.get("error")

    @property
    def created(self) -> float:
        return float(self.status.get("created") or 0.0)

    @property
    def epochs(self) -> float:
        if self.mode == "byol":
            return self.cfg.byol.optim.epochs
        if self.mode == "linear":
            return self.cfg.supervised.linear_optim.epochs
        return self.cfg.supervised.optim.epochs

    @property
    def method(self) -> str:
        return method_of(self.mode, self.from_run)

    @property
    def accuracy(self) -> float | None:
        """The run's headline test accuracy (kNN for BYOL and evaluate runs)."""
        r = self.results
        value = r.get("knn_accuracy") if self.mode in ("byol", "evaluate") else r.get("test_accuracy")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def orphaned(self) -> bool:
        """Queued by a dashboard process that has since gone: it will never start on its own."""
        return self.state == "queued" and not _pid_alive(self.status.get("pid"))

    @property
    def resumable(self) -> bool:
        return (self.state in RESUMABLE or self.orphaned) and self.kind in ("byol", "supervised", "linear")

    def short(self) -> str:
        """A label for select boxes: 'BYOL kNN · digits · 20250101-120000-byol-…'."""
        acc = f" · {100 * self.accuracy:.1f}%" if self.accuracy is not None else ""
        return f"{self.method} · {self.dataset}{acc} · {self.id}"


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def method_of(mode: str, from_run: str | None) -> str:
    if mode == "byol":
        return "BYOL kNN"
    if mode == "scratch":
        return "supervised from scratch"
    if mode == "finetune":
        return "BYOL fine-tuned"
    if mode == "linear":
        return "BYOL linear probe"
    if mode == "evaluate":
        return "kNN (evaluated run)" if from_run else "random-init kNN"
    return mode


def describe(run: Run) -> RunInfo | None:
    """A run's summary, or None when its folder is unreadable (half-written, foreign)."""
    try:
        cfg, kind, options = run.read_config()
    except (OSError, ValueError, KeyError):
        return None
    status = run.read_status()
    mode = options.get("mode") or kind
    return RunInfo(id=run.id, kind=kind, mode=mode, name=cfg.name, dataset=cfg.data.name,
                   label_fraction=cfg.data.label_fraction, state=status.get("state", "unknown"),
                   from_run=options.get("from_run"), cfg=cfg, status=status,
                   has_encoder=run.encoder_path.is_file())


def list_runs(store: RunStore) -> list[RunInfo]:
    """Every readable run, newest first."""
    return [info for info in (describe(r) for r in store.list()) if info is not None]


def encoder_runs(infos: list[RunInfo]) -> list[RunInfo]:
    """Runs whose encoder can be embedded (finished or stopped runs that exported one)."""
    return [i for i in infos if i.kind in ENCODER_KINDS and i.has_encoder and i.state not in ("running", "queued")]


def byol_runs(infos: list[RunInfo]) -> list[RunInfo]:
    """Finished BYOL runs: what fine-tuning and linear probes start from."""
    return [i for i in infos if i.mode == "byol" and i.has_encoder and i.state == "finished"]


def compare_rows(infos: list[RunInfo]) -> list[dict[str, Any]]:
    """One row per finished run with an accuracy, for the Compare page's table, chart and CSV."""
    rows = []
    for i in infos:
        if i.state != "finished" or i.accuracy is None or i.kind == "experiment":
            continue
        rows.append({
            "method": i.method,
            "accuracy": i.accuracy,
            "dataset": i.dataset,
            "label_fraction": i.label_fraction,
            "epochs": i.epochs,
            "backbone": i.cfg.model.backbone,
            "image_size": i.cfg.augment.image_size,
            "from_run": i.from_run or "",
            "run_id": i.id,
            "label": f"{i.method} · {i.id[-4:]}",
            "finished": time.strftime("%Y-%m-%d %H:%M", time.localtime(i.status.get("finished") or 0)),
        })
    return rows


CSV_COLUMNS = ("method", "accuracy", "dataset", "label_fraction", "epochs", "backbone", "image_size",
               "from_run", "run_id", "finished")


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    return buf.getvalue()


def accuracy_curve(run: Run, mode: str) -> tuple[list[float], list[float]]:
    """Per-epoch accuracy from metrics.jsonl: kNN for BYOL, test accuracy for supervised runs."""
    key = "knn_accuracy" if mode == "byol" else "test_accuracy"
    xs, ys = [], []
    for e in run.read_metrics():
        if e.get("kind") == "epoch" and e.get(key) is not None:
            xs.append(e.get("epoch"))
            ys.append(e[key])
    return xs, ys


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"

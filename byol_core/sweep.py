"""The label-efficiency sweep: every method at several label fractions, over several seeds, with intervals.

For each seed one BYOL pretraining runs (it never looks at labels, so every fraction reuses it);
then, at each label fraction: supervised from scratch, BYOL fine-tuned, BYOL linear probe, BYOL
kNN, random-init kNN, and the raw-pixel floors (logistic regression and kNN). Seed ``i`` trains
with ``cfg.seed + i``; ``data.split_seed`` stays, so the test, validation and labelled subsets are
the same for every seed and the methods' values are paired by seed. Every stage run is an
ordinary run folder; a summary run of kind ``"sweep"`` holds the table in its status.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runner
from .builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from .config import ConfigError, ExperimentConfig, with_overrides
from .data import DataSplits, load_data
from .floors import PIXEL_KNN, PIXEL_LOGISTIC, pixel_knn_accuracy, pixel_logistic_accuracy
from .plans import plan
from .runs import Run, RunStore
from .stages import get_stage
from .stats import Summary, summarize
from .training import Callback

SWEEP_KIND = "sweep"
BYOL_KNN = BYOL.method  # kNN of the seed's BYOL encoder, scored at each fraction
# Table order: the learned methods, then the baselines and floors they must beat.
METHODS = (FINETUNE.method, LINEAR.method, BYOL_KNN, SCRATCH.method, KNN.method, PIXEL_LOGISTIC, PIXEL_KNN)
CallbackFactory = Callable[[str], Sequence[Callback]]


@dataclass
class SweepRow:
    """One method at one label fraction: a value per seed (seeds that gave none are left out)."""

    method: str
    label_fraction: float
    labelled_images: int = 0
    seeds: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    run_ids: list[str | None] = field(default_factory=list)

    def add(self, seed: int, value: float | None, run_id: str | None) -> None:
        if value is not None:
            self.seeds.append(seed)
            self.values.append(value)
            self.run_ids.append(run_id)

    def summary(self) -> Summary | None:
        return summarize(self.values) if self.values else None

    def to_dict(self) -> dict[str, Any]:
        s = self.summary()
        return {"method": self.method, "label_fraction": self.label_fraction, "labelled_images": self.labelled_images,
                "n": len(self.values), "mean": s.mean if s else None, "std": s.std if s else None,
                "ci95": list(s.ci) if s and s.ci else None, "values": list(self.values), "seeds": list(self.seeds),
                "run_ids": list(self.run_ids)}


@dataclass
class SweepResult:
    run_id: str
    dataset: str
    config_name: str
    label_fractions: list[float]
    seeds: list[int]
    test_images: int = 0
    val_images: int = 0
    byol_runs: list[str] = field(default_factory=list)
    rows: list[SweepRow] = field(default_factory=list)
    wall_seconds: float = 0.0

    def find(self, method: str, label_fraction: float) -> SweepRow | None:
        return next((r for r in self.rows if r.method == method and r.label_fraction == label_fraction), None)

    def row(self, method: str, label_fraction: float) -> SweepRow:
        """The row of ``method`` at ``label_fraction``, added (in table order) when it is new."""
        r = self.find(method, label_fraction)
        if r is None:
            r = SweepRow(method, label_fraction)
            self.rows.append(r)
            order = {m: i for i, m in enumerate(METHODS)}
            self.rows.sort(key=lambda x: (order.get(x.method, len(order)), x.label_fraction))
        return r

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dataset": self.dataset, "config_name": self.config_name,
                "label_fractions": self.label_fractions, "seeds": self.seeds, "test_images": self.test_images,
                "val_images": self.val_images, "byol_runs": self.byol_runs, "wall_seconds": self.wall_seconds,
                "confidence": 0.95, "rows": [r.to_dict() for r in self.rows]}

    def csv_text(self) -> str:
        """One line per (method, label fraction); per-seed values and run ids joined with ';'."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["method", "label_fraction", "labelled_images", "n", "mean", "std", "ci95_low",
                         "ci95_high", "values", "seeds", "run_ids"])
        for d in (r.to_dict() for r in self.rows):
            low, high = d["ci95"] or ("", "")
            writer.writerow([d["method"], d["label_fraction"], d["labelled_images"], d["n"], _blank(d["mean"]),
                             _blank(d["std"]), low, high, ";".join(map(str, d["values"])),
                             ";".join(map(str, d["seeds"])), ";".join(r or "" for r in d["run_ids"])])
        return out.getvalue()

    def table(self) -> str:
        """Test accuracy in %, method by label fraction: ``mean ± half-width of the 95% CI (n seeds)``."""
        head = [f"{'method':<30}"] + [f"{f'{100 * f:g}% labels':>20}" for f in self.label_fractions]
        lines = [" ".join(head), " ".join(["-" * 30] + ["-" * 20] * len(self.label_fractions))]
        for method in METHODS:
            cells = [_cell(r.summary() if (r := self.find(method, f)) else None) for f in self.label_fractions]
            lines.append(" ".join([f"{method:<30}"] + [f"{c:>20}" for c in cells]))
        lines.append(f"test accuracy (%) on {self.test_images} {self.dataset} test images, mean ± half-width of "
                     f"the 95% t-interval over seeds (n); seeds {self.seeds}; wall time {self.wall_seconds:.1f} s")
        return "\n".join(lines)


def _blank(value: float | None) -> Any:
    return "" if value is None else value


def _cell(s: Summary | None) -> str:
    if s is None:
        return "-"
    if s.half_width is None:
        return f"{100 * s.mean:.1f} ({s.n})"
    return f"{100 * s.mean:.1f} ± {100 * s.half_width:.1f} ({s.n})"


def parse_fractions(text: str) -> list[float]:
    """``"0.01,0.1,1"`` as sorted distinct fractions; a ConfigError names a bad one."""
    out = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"--label-fractions: {part!r} is not a number (e.g. 0.01,0.1,1).") from None
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"--label-fractions: {part} is outside (0, 1].")
        out.add(value)
    if not out:
        raise ConfigError("--label-fractions is empty; give e.g. 0.01,0.1,1.")
    return sorted(out)


class _Sweeper:
    """Runs one sweep's stages into the store and records each headline number in the result."""

    def __init__(self, cfg: ExperimentConfig, store: RunStore, result: SweepResult, summary_run: Run,
                 callbacks_for: CallbackFactory, stop_event: threading.Event | None,
                 say: Callable[[str], None]) -> None:
        self.cfg, self.store, self.result, self.summary_run = cfg, store, result, summary_run
        self.callbacks_for, self.stop_event, self.say = callbacks_for, stop_event, say
        self.floors: dict[tuple[str, float], float | None] = {}  # floors do not depend on the seed

    def stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def stage(self, stage: str, cfg: ExperimentConfig, splits: DataSplits, name: str,
              source_run: str | None = None) -> tuple[float | None, str]:
        spec = plan(stage, cfg, source_run=source_run, name=name)
        run = runner.start(spec, self.store, splits=splits, callbacks=self.callbacks_for(stage),
                           stop_event=self.stop_event)
        return get_stage(stage).headline(runner.run_results(run)), run.id

    def record(self, method: str, fraction: float, seed: int, labelled: int, value: float | None,
               run_id: str | None) -> None:
        row = self.result.row(method, fraction)
        row.labelled_images = labelled
        row.add(seed, value, run_id)
        self.summary_run.log({"kind": "row", "method": method, "label_fraction": fraction, "seed": seed,
                              "accuracy": value, "run_id": run_id})

    def seed(self, seed: int) -> None:
        cfg = dataclasses.replace(self.cfg, seed=seed)
        base_name = f"{self.cfg.name}-s{seed}"
        self.say(f"seed {seed}: BYOL pretraining")
        _, byol_run = self.stage(BYOL.name, cfg, load_data(cfg.data), base_name)
        self.result.byol_runs.append(byol_run)
        for fraction in self.result.label_fractions:
            if self.stopped():
                return
            fraction_cfg = with_overrides(cfg, {"data.label_fraction": fraction})
            splits = load_data(fraction_cfg.data)
            labelled = len(splits.labelled_train)
            name = f"{base_name}-f{fraction:g}"
            steps = ((FINETUNE.method, FINETUNE.name, byol_run), (LINEAR.method, LINEAR.name, byol_run),
                     (BYOL_KNN, KNN.name, byol_run), (SCRATCH.method, SCRATCH.name, None),
                     (KNN.method, KNN.name, None))
            for method, stage, source in steps:
                if self.stopped():
                    return
                self.say(f"seed {seed}, {100 * fraction:g}% labels ({labelled} images): {method}")
                value, run_id = self.stage(stage, fraction_cfg, splits, name, source)
                self.record(method, fraction, seed, labelled, value, run_id)
            for method, floor in ((PIXEL_LOGISTIC, pixel_logistic_accuracy), (PIXEL_KNN, pixel_knn_accuracy)):
                if (method, fraction) not in self.floors:
                    self.floors[(method, fraction)] = floor(splits, fraction_cfg)
                self.record(method, fraction, seed, labelled, self.floors[(method, fraction)], None)


def run_sweep(cfg: ExperimentConfig, store: RunStore, label_fractions: Sequence[float], seeds: int, *,
              callbacks_for: CallbackFactory | None = None, stop_event: threading.Event | None = None,
              json_path: str | Path | None = None,
              progress: Callable[[str], None] | None = None) -> SweepResult:
    """Run the sweep (``seeds`` seeds from ``cfg.seed``) and return, store and optionally write its table.

    ``json_path``: also write the result as JSON there and as CSV beside it (same path, ``.csv``).
    """
    if seeds < 1:
        raise ConfigError(f"--seeds = {seeds}; run at least one seed.")
    fractions = parse_fractions(",".join(map(str, label_fractions)))
    t_start = time.perf_counter()
    say = progress or (lambda _msg: None)
    summary_run = store.create(SWEEP_KIND, cfg, {"label_fractions": fractions, "seeds": seeds})
    with summary_run.claim():  # its status reads "running" only while this process holds it
        summary_run.set_status("running", started=time.time())
        try:
            splits = load_data(cfg.data)
            result = SweepResult(run_id=summary_run.id, dataset=splits.name, config_name=cfg.name,
                                 label_fractions=fractions, seeds=[cfg.seed + i for i in range(seeds)],
                                 test_images=len(splits.test), val_images=len(splits.val))
            sweeper = _Sweeper(cfg, store, result, summary_run, callbacks_for or (lambda _stage: ()),
                               stop_event, say)
            for seed in result.seeds:
                if sweeper.stopped():
                    break
                sweeper.seed(seed)
                summary_run.set_status("running", results=result.to_dict())  # partial table, for the dashboard
        except BaseException as exc:  # a crash or Ctrl-C twice: the summary run says how it ended
            summary_run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        result.wall_seconds = time.perf_counter() - t_start
        state = "stopped" if sweeper.stopped() else "finished"
        summary_run.set_status(state, results=result.to_dict(), finished=time.time())
    if json_path is not None:
        write_outputs(result, json_path)
    return result


def write_outputs(result: SweepResult, json_path: str | Path) -> tuple[Path, Path]:
    """The result as JSON at ``json_path`` and as CSV beside it; returns both paths."""
    json_file = Path(json_path)
    csv_file = json_file.with_suffix(".csv")
    json_file.parent.mkdir(parents=True, exist_ok=True)
    json_file.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    csv_file.write_text(result.csv_text())
    return json_file, csv_file

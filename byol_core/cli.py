"""Command line: ``python -m byol_core pretrain | supervised | evaluate | experiment | sweep | ablation | resume | runs
| config | export``."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import distributed
from .config import ConfigError, ExperimentConfig, load_config, parse_set_args, to_json, with_overrides
from .data import DataError
from .events import EPOCH, MESSAGE_KINDS, START, STEP, Callback
from .lab import runner
from .lab.annotations import annotate
from .lab.builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH, SIMCLR
from .lab.export import encoder_bundle, loading_snippet, write_bundle
from .lab.plans import plan
from .lab.run_store import RunStore
from .lab.summary import list_summaries
from .methods.loop import TrainingError
from .presets import PRESETS, get_preset
from .studies.ablation import ABLATION, AblationResult
from .studies.experiment import EXPERIMENT, ExperimentResult
from .studies.sweep import SWEEP, SweepResult, parse_fractions
from .text import printable

USER_ERRORS = (ConfigError, DataError, TrainingError, FileNotFoundError, ValueError)
SUPERVISED_STAGES = (SCRATCH.name, FINETUNE.name, LINEAR.name)
# Studies are stages: planned with their options, run as one job, their table read back from the run's results.
STUDIES: dict[str, tuple[Callable[[argparse.Namespace], dict[str, Any]], Callable[[dict[str, Any]], Any]]] = {
    EXPERIMENT.name: (lambda _a: {}, ExperimentResult.from_dict),
    SWEEP.name: (lambda a: {"label_fractions": parse_fractions(a.label_fractions), "seeds": a.seeds},
                 SweepResult.from_dict),
    ABLATION.name: (lambda a: {"seeds": a.seeds}, AblationResult.from_dict),
}
RUN_ACTIONS = ("list", "rename", "note", "archive", "unarchive", "delete")


class ProgressBars:
    """tqdm bars driven by metric events: one bar per stage, updated in steps."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = None

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            if event.get("kind") in MESSAGE_KINDS:  # what a person must know is said even without bars
                print(f"note: {printable(event.get('message'))}", file=sys.stderr)
            return
        from tqdm.auto import tqdm

        kind = event.get("kind")
        if kind in MESSAGE_KINDS:
            tqdm.write(f"note: {printable(event.get('message'))}", file=sys.stderr)
        elif kind == START:
            self.close()
            self.bar = tqdm(total=event["total_steps"], initial=event["step"], desc=event.get("stage", ""),
                            unit="step", dynamic_ncols=True)
        elif self.bar is not None and kind in (STEP, EPOCH):
            self.bar.update(event["step"] - self.bar.n)
            post = {k: f"{event[k]:.4g}" for k in ("loss", "tau", "img_per_s", "val_knn_accuracy", "val_accuracy")
                    if k in event}
            if post:
                self.bar.set_postfix(post, refresh=False)
            if event["step"] >= event.get("total_steps", float("inf")):
                self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _say_defaults(path: str) -> Callable[[list[str]], None]:
    def say(fields: list[str]) -> None:
        shown = ", ".join(fields[:8]) + (f" and {len(fields) - 8} more" if len(fields) > 8 else "")
        print(f"note: {path} does not set {shown}; using the defaults for those.", file=sys.stderr)

    return say


def build_config(args: argparse.Namespace) -> ExperimentConfig:
    cfg = load_config(args.config, on_defaults=_say_defaults(args.config)) if args.config else get_preset(args.preset)
    return with_overrides(cfg, parse_set_args(args.set or []))


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="byol-paper", choices=sorted(PRESETS),
                   help="hyperparameter preset to start from (default: byol-paper)")
    p.add_argument("--config", help="a config.json to start from instead of a preset")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field, e.g. --set byol.optim.lr=3e-4 (repeatable)")
    p.add_argument("--runs-dir", default="runs", help="where run folders are written (default: runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m byol_core", description="BYOL Lab: self-supervised "
                                     "pretraining with BYOL, and the experiments that show it helps.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pretrain", help="BYOL (or SimCLR) pretraining on unlabeled images")
    _add_config_args(p)
    p.add_argument("--method", choices=(BYOL.name, SIMCLR.name), default=BYOL.name,
                   help="self-supervised method (default: byol; simclr is the contrastive baseline)")
    p = sub.add_parser("supervised", help="supervised training: from scratch, fine-tune or linear probe")
    _add_config_args(p)
    p.add_argument("--mode", choices=SUPERVISED_STAGES, default=SCRATCH.name)
    p.add_argument("--from", dest="from_run", help="BYOL run whose encoder to start from (finetune, linear)")
    p = sub.add_parser("evaluate", help="kNN accuracy of an encoder (a run's, or a random init)")
    _add_config_args(p)
    p.add_argument("--from", dest="from_run", help="run whose encoder to evaluate (default: random init)")
    p = sub.add_parser("experiment", help="the whole comparison: supervised vs BYOL fine-tuned, probe, kNN")
    _add_config_args(p)
    p.add_argument("--json", help="also write the table as JSON to this path")
    p = sub.add_parser("ablation", help="BYOL and SimCLR with and without colour augmentation, over seeds")
    _add_config_args(p)
    p.add_argument("--seeds", type=int, default=3, help="training seeds per arm (default: 3)")
    p.add_argument("--json", help="also write the rows and drops as JSON to this path")
    p = sub.add_parser("sweep", help="label efficiency: every method at several label fractions, over seeds")
    _add_config_args(p)
    p.add_argument("--label-fractions", default="0.01,0.1,1", help="comma-separated (default: 0.01,0.1,1)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per fraction, from the config's seed (default: 3)")
    p.add_argument("--json", help="also write the rows as JSON to this path (and CSV beside it)")
    p = sub.add_parser("resume", help="continue a stopped or interrupted run from its checkpoint")
    p.add_argument("run_id")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a field that is safe to change mid-run, e.g. --set byol.optim.lr=1e-4 (repeatable)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("runs", help="list runs (archived ones only with --all); rename, note, archive, unarchive "
                                    "or delete one")
    p.add_argument("action", nargs="?", default="list", choices=RUN_ACTIONS)
    p.add_argument("run_id", nargs="?", help="the run to change (all actions but list)")
    p.add_argument("text", nargs="?", default="", help="the new name (rename) or note (note); empty clears it")
    p.add_argument("--all", action="store_true", help="list archived runs too")
    p.add_argument("--runs-dir", default="runs")
    p = sub.add_parser("config", help="print the resolved config as JSON")
    _add_config_args(p)
    p = sub.add_parser("export", help="write a run's encoder with its architecture and preprocessing to one file")
    p.add_argument("run_id")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--out", help="the file to write (default: encoder-<run id>.pt here)")
    return parser


def _in_worker(work: Callable[[threading.Event], Any]) -> Any:
    """Run ``work`` in a thread so Ctrl-C stops it cleanly (checkpoint saved, run marked 'stopped')."""
    stop = threading.Event()
    done = threading.Event()  # waited on instead of Thread.join: a Ctrl-C during join can mark a live thread ended
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work(stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            box["error"] = exc
        finally:
            done.set()

    distributed.stop_on_sigterm(stop)
    thread = threading.Thread(target=target, name="byol-cli-worker", daemon=True)
    thread.start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        if distributed.current().is_main:
            print("\nstopping: saving a checkpoint (Ctrl-C again to abort)...", file=sys.stderr)
        stop.set()
        done.wait()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _print_results(store: RunStore, run_id: str) -> None:
    if not distributed.current().is_main:
        return
    run = store.get(run_id)
    status = run.read_status()
    print(json.dumps({"run": run_id, "state": status.get("state"), "path": str(run.path),
                      **status.get("results", {})}, indent=2))


def _say(message: str) -> None:
    print(f"== {printable(message)}", file=sys.stderr)


def _say_study_progress(event: dict[str, Any]) -> None:
    if event.get("kind") == STEP and event.get("doing"):
        _say(f"[{event['step']}/{event['total_steps']} runs done] {event['doing']}")
    elif event.get("kind") in MESSAGE_KINDS:  # e.g. image files the study's data could not read
        print(f"note: {printable(event.get('message'))}", file=sys.stderr)


# Commands that run under torchrun (one process per GPU); the others are refused there.
DISTRIBUTED_COMMANDS = ("pretrain", "resume")


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    world = distributed.world_from_env()
    if world.active and args.command not in DISTRIBUTED_COMMANDS:
        if world.is_main:
            print(f"error: under torchrun only {' and '.join(DISTRIBUTED_COMMANDS)} run (BYOL pretraining with "
                  f"DistributedDataParallel); run `{args.command}` with plain `python -m byol_core`.",
                  file=sys.stderr)
        return 2
    try:
        distributed.init()
    except ValueError as exc:  # this rank cannot join (e.g. more processes than GPUs): it says why
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _dispatch(args)
    except USER_ERRORS as exc:
        if world.is_main:  # every rank meets the same error; one says it (on one line, escapes shown, not obeyed)
            print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()


def _change_run(store: RunStore, args: argparse.Namespace) -> int:
    """``runs rename|note|archive|unarchive|delete <run id> [text]``."""
    if not args.run_id:
        raise ValueError(f"`runs {args.action}` needs a run id: python -m byol_core runs {args.action} <run id>.")
    if args.action == "delete":
        store.delete(args.run_id)
        print(f"deleted run {args.run_id}")
        return 0
    field = {"rename": "name", "note": "note"}.get(args.action, "archived")
    value = args.action == "archive" if field == "archived" else args.text
    annotate(store.get(args.run_id), **{field: value})
    print(printable(f"run {args.run_id}: {args.action}d" if field == "archived" else
                    f"run {args.run_id}: {field} = {value!r}"))
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    store = RunStore(args.runs_dir) if hasattr(args, "runs_dir") else None
    if args.command == "runs" and args.action != "list":
        return _change_run(store, args)
    if args.command == "runs":
        for summary in list_summaries(store):
            if summary.archived and not args.all:
                continue
            acc = "" if summary.metric is None else f"  {summary.metric_name}={100 * summary.metric:.2f}%"
            name = f"  \"{summary.display_name}\"" if summary.display_name else ""
            flags = "  [archived]" if summary.archived else ""
            note = f"  damaged: {summary.damaged}" if summary.damaged else ""
            # Names, notes and reasons are text people (or damaged files) wrote: escapes are shown, never obeyed.
            print(printable(f"{summary.id:<56} {summary.state:<12}{acc}{name}{flags}{note}"))
        return 0
    if args.command == "export":
        path = write_bundle(store, args.run_id, args.out)
        print(f"wrote {path}\n\n# load it with:\n{loading_snippet(encoder_bundle(store, args.run_id), path.name)}")
        return 0
    shows_progress = hasattr(args, "no_progress") and distributed.current().is_main
    bars = ProgressBars(enabled=not args.no_progress) if shows_progress else None
    callbacks: list[Callback] = [bars] if bars else []
    if args.command == "resume":
        overrides = parse_set_args(args.set or [])
        run = _in_worker(lambda stop: runner.resume(store, args.run_id, callbacks=callbacks, stop_event=stop,
                                                    overrides=overrides))
        _print_results(store, run.id)
        return 0
    cfg = build_config(args)
    if args.command == "config":
        print(to_json(cfg))
        return 0
    stage = {"pretrain": getattr(args, "method", BYOL.name), "supervised": getattr(args, "mode", None), "evaluate": KNN.name}.get(args.command)
    if stage is not None:
        spec = plan(stage, cfg, source_run=getattr(args, "from_run", None))
        run = _in_worker(lambda stop: runner.start(spec, store, callbacks=callbacks, stop_event=stop))
        bars.close() if bars else None
        _print_results(store, run.id)
        return 0
    options, result_of = STUDIES[args.command]  # argparse allows no other command
    spec = plan(args.command, cfg, options=options(args))  # bad options end here, before any run folder
    # The study reports which run it is on; each run it starts drives the progress bars.
    run = _in_worker(lambda stop: runner.start(spec, store, callbacks=[_say_study_progress],
                                               inner_callbacks=callbacks, stop_event=stop))
    result = result_of(runner.run_results(run))
    written = result.write(args.json) if args.json else []
    bars.close() if bars else None
    print(result.table())
    if written:
        print("wrote " + " and ".join(map(str, written)))
    return 0

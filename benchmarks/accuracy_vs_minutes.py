"""Linear-probe accuracy against minutes of BYOL pretraining, over seeds, against supervised from scratch.

    python benchmarks/accuracy_vs_minutes.py pretrain --preset fmnist-30min --seed 0 --dir runs-minutes
    python benchmarks/accuracy_vs_minutes.py pretrain --preset fmnist-30min --seed 1 --dir runs-minutes
    python benchmarks/accuracy_vs_minutes.py report --preset fmnist-30min --dir runs-minutes --fractions 0.0111112,1

``pretrain`` trains one seed and keeps the online encoder every ``--every`` epochs with the training
seconds so far (evaluation time left out), so seeds can run in parallel processes. ``report`` scores
every kept encoder with a linear probe at each label fraction on the validation split (the curve),
scores the last one on the test split (probe and kNN, beside the floors it must beat: raw-pixel kNN
and random-init kNN), trains supervised from scratch on the same labels for each seed, and prints
mean ± half-width of the 95% t-interval over seeds and the paired differences.
Fraction 0.0111112 is 600 labels (60 a class) of the 54,000 left after validation. Scores are cached
in each seed folder, so ``report`` can run on the first seeds while the last one trains.
Writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from byol_core.config import ExperimentConfig, parse_set_args, to_dict, with_overrides
from byol_core.data import load_data
from byol_core.lab.builtin_stages import KNN
from byol_core.methods.byol import pretrain_byol
from byol_core.methods.floors import PIXEL_KNN, pixel_knn_accuracy
from byol_core.methods.loop import StepPlan
from byol_core.methods.networks import build_encoder
from byol_core.methods.pretraining import knn_eval, prepare_runtime
from byol_core.methods.supervised import train_supervised
from byol_core.presets import get_preset
from byol_core.stats import compare, summarize
from byol_core.stats_text import format_ci, format_difference
from byol_core.studies.sweep import parse_fractions

ENCODER_PREFIX = "online_encoder.model."
RANDOM_KNN = KNN.method  # "random-init kNN", as the sweep names it


def _config(args: argparse.Namespace) -> ExperimentConfig:
    return with_overrides(get_preset(args.preset), parse_set_args(args.set))


def pretrain(args: argparse.Namespace) -> None:
    cfg = with_overrides(_config(args), {"seed": args.seed, "byol.knn_every_epochs": 0})
    out = Path(args.dir) / f"seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    splits = load_data(cfg.data)
    plan = StepPlan.for_data(len(splits.pretrain_images()), cfg.byol.optim)  # the plan pretrain_byol makes
    clock = {"train": 0.0, "last": time.perf_counter()}

    def on_event(event: dict[str, Any]) -> None:
        now = time.perf_counter()
        if event["kind"] == "step":
            clock["train"] += now - clock["last"]
        clock["last"] = now

    def keep(checkpoint: dict[str, Any]) -> None:
        epoch = plan.epochs_done(checkpoint["step"])
        if epoch % args.every and checkpoint["step"] < plan.total_steps:
            return
        state = {k[len(ENCODER_PREFIX):]: v.clone() for k, v in checkpoint["model"].items()
                 if k.startswith(ENCODER_PREFIX)}
        torch.save({"encoder": state, "epoch": epoch, "step": checkpoint["step"],
                    "train_seconds": clock["train"]}, out / f"epoch{epoch:03d}.pt")
        print(f"seed {args.seed} epoch {epoch} step {checkpoint['step']} {clock['train']:.0f} s", flush=True)
        clock["last"] = time.perf_counter()

    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    pretrain_byol(cfg, splits, callbacks=[on_event], save_checkpoint=keep)


def _last_val(events: list[dict[str, Any]]) -> float | None:
    vals = [e["val_accuracy"] for e in events if e.get("kind") == "epoch" and "val_accuracy" in e]
    return vals[-1] if vals else None


def _probe(cfg: ExperimentConfig, splits: Any, state: dict[str, torch.Tensor] | None, mode: str) -> tuple[float, float]:
    """(validation, test) accuracy of a probe (``linear``), fine-tuning or training from scratch."""
    events: list[dict[str, Any]] = []
    result = train_supervised(cfg, splits, mode, encoder_state=state, callbacks=[events.append])
    return _last_val(events), result.test_accuracy


def _score(cfg: ExperimentConfig, splits: Any, path: Path, last: bool, supervised: bool,
           device: torch.device) -> dict[str, Any]:
    """One kept encoder's validation probe; for the last one also its test probe, kNN and (if asked)
    supervised from scratch and fine-tuning on the same labels."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    val, test = _probe(cfg, splits, ck["encoder"], "linear")
    row = {"seed": cfg.seed, "label_fraction": cfg.data.label_fraction, "labelled": len(splits.labelled_train),
           "epoch": ck["epoch"], "minutes": ck["train_seconds"] / 60, "val_probe": val}
    if last:
        encoder = build_encoder(cfg.model)
        encoder.model.load_state_dict(ck["encoder"])
        row["test_probe"] = test
        row["test_knn"] = knn_eval(encoder.to(device), splits, cfg, device)
        if supervised:
            for mode in ("scratch", "finetune"):
                state = ck["encoder"] if mode == "finetune" else None
                row[f"test_{mode}"] = _probe(cfg, splits, state, mode)[1]
    return row


def _floors(cfg: ExperimentConfig, splits: Any, device: torch.device) -> dict[str, float]:
    """What BYOL kNN must beat on the same labels and test images: raw pixels and the network at random init."""
    torch.manual_seed(cfg.seed)  # the random init of this seed, as the kNN stage draws it
    encoder = build_encoder(cfg.model)
    return {"test_random_knn": knn_eval(encoder.to(device), splits, cfg, device),
            "test_pixel_knn": pixel_knn_accuracy(splits, cfg)}


class _ScoreCache:
    """Scores already computed, kept beside the encoders: a rerun after adding a seed scores only the new one.

    Keyed by the checkpoint, the config (so a changed probe setting is scored afresh; runtime settings such
    as the thread count are left out) and what was asked.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    @staticmethod
    def _key(cfg: ExperimentConfig, name: str, last: bool, supervised: bool) -> str:
        settings = {k: v for k, v in to_dict(cfg).items() if k != "runtime"}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return f"{name}|{digest}|{'last' if last else 'curve'}|{'sup' if supervised and last else ''}"

    def get(self, cfg: ExperimentConfig, name: str, last: bool, supervised: bool) -> dict[str, Any] | None:
        return self.rows.get(self._key(cfg, name, last, supervised))

    def put(self, cfg: ExperimentConfig, name: str, last: bool, supervised: bool, row: dict[str, Any]) -> None:
        self.rows[self._key(cfg, name, last, supervised)] = row
        self.path.write_text(json.dumps(self.rows, indent=1) + "\n")


def report(args: argparse.Namespace) -> None:
    base = _config(args)
    device, _ = prepare_runtime(base)
    fractions = parse_fractions(args.fractions)
    seed_dirs = sorted(Path(args.dir).glob("seed*"))
    if not seed_dirs:
        raise SystemExit(f"no seed folders in {args.dir}: run the pretrain command first")
    curve: list[dict[str, Any]] = []
    finals: dict[str, dict[float, list[float]]] = {}
    labelled: dict[float, int] = {}  # images behind each fraction, e.g. 0.0111112 -> 600 of 54,000
    for seed_dir in seed_dirs:
        seed = int(seed_dir.name[4:])
        kept = sorted(seed_dir.glob("epoch*.pt"))
        # The last encoder always; the curve every --curve-every epochs (a probe on all labels takes minutes).
        kept = [p for p in kept if p == kept[-1] or int(p.stem[5:]) % args.curve_every == 0]
        cache = _ScoreCache(seed_dir / "scores.json")
        for fraction in fractions:
            cfg = with_overrides(base, {"seed": seed, "data.label_fraction": fraction})
            splits = load_data(cfg.data)
            labelled[fraction] = len(splits.labelled_train)
            for path in kept:
                last, supervised = path == kept[-1], fraction < 1 or args.full_supervised
                row = cache.get(cfg, path.name, last, supervised)
                if row is None:
                    row = _score(cfg, splits, path, last, supervised, device)
                    cache.put(cfg, path.name, last, supervised, row)
                if last and "test_pixel_knn" not in row:  # rows cached before the floors were scored
                    row.update(_floors(cfg, splits, device))
                    cache.put(cfg, path.name, last, supervised, row)
                if last:
                    finals.setdefault("BYOL linear probe", {}).setdefault(fraction, []).append(row["test_probe"])
                    finals.setdefault("BYOL kNN", {}).setdefault(fraction, []).append(row["test_knn"])
                    for mode, name in (("scratch", "supervised from scratch"), ("finetune", "BYOL fine-tuned"),
                                       ("random_knn", RANDOM_KNN), ("pixel_knn", PIXEL_KNN)):
                        if f"test_{mode}" in row:
                            finals.setdefault(name, {}).setdefault(fraction, []).append(row[f"test_{mode}"])
                curve.append(row)
                print(json.dumps(row), flush=True)

    print(f"\nvalidation linear probe against pretraining minutes ({len(seed_dirs)} seeds, mean ± 95% CI half-width)")
    epochs = sorted({r["epoch"] for r in curve})
    print(f"{'epoch':>5} {'minutes':>8} " + " ".join(f"{f'probe {labelled[f]}':>16}" for f in fractions))
    table = []
    for epoch in epochs:
        rows = [r for r in curve if r["epoch"] == epoch]
        minutes = summarize([r["minutes"] for r in rows]).mean
        cells = {f: summarize([r["val_probe"] for r in rows if r["label_fraction"] == f]) for f in fractions}
        table.append({"epoch": epoch, "minutes": minutes,
                      **{f"val_probe_{f:g}": {"mean": c.mean, "ci95": list(c.ci) if c.ci else None, "n": c.n}
                         for f, c in cells.items()}})
        print(f"{epoch:>5} {minutes:>8.1f} " + " ".join(f"{format_ci(c):>16}" for c in cells.values()))

    print("\ntest accuracy of the last encoder")
    final_rows = []
    for name, by_fraction in finals.items():
        for fraction, values in by_fraction.items():
            s = summarize(values)
            final_rows.append({"method": name, "label_fraction": fraction, "labelled": labelled[fraction],
                               "n": s.n, "mean": s.mean,
                               "ci95": list(s.ci) if s.ci else None, "values": values})
            print(f"{name:>26} {labelled[fraction]:>6} {format_ci(s):>16}  values {[round(100 * v, 2) for v in values]}")
    differences = []
    pairs = (("BYOL linear probe", "supervised from scratch"), ("BYOL fine-tuned", "supervised from scratch"),
             ("BYOL kNN", PIXEL_KNN), ("BYOL kNN", RANDOM_KNN))
    for fraction in fractions:
        for name, baseline in pairs:
            ours, theirs = finals.get(name, {}).get(fraction), finals.get(baseline, {}).get(fraction)
            if theirs and ours and len(theirs) == len(ours) > 1:
                diff = compare(ours, theirs, name, baseline)
                differences.append({"label_fraction": fraction, "comparison": f"{name} − {baseline}",
                                    "text": format_difference(diff)})
                print(f"{labelled[fraction]:>6} labels: {format_difference(diff)}")
    out = {"machine": f"{platform.machine()} {torch.get_num_threads()} threads, {platform.processor()}",
           "preset": args.preset, "curve": table, "per_seed": curve, "final": final_rows,
           "differences": differences, "config": to_dict(base)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pretrain", "report"):
        p = sub.add_parser(name)
        p.add_argument("--preset", default="fmnist-30min")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--dir", default="runs-minutes")
    sub.choices["pretrain"].add_argument("--seed", type=int, default=0)
    sub.choices["pretrain"].add_argument("--every", type=int, default=2, help="keep the encoder every N epochs")
    sub.choices["report"].add_argument("--fractions", default="0.01,1")
    sub.choices["report"].add_argument("--curve-every", type=int, default=1,
                                       help="score the kept encoders of every N-th epoch for the curve (the last always)")
    sub.choices["report"].add_argument("--full-supervised", action="store_true",
                                       help="also train scratch and fine-tune with 100%% of the labels (slow)")
    sub.choices["report"].add_argument("--out", default="benchmarks/results/accuracy_vs_minutes.json")
    args = parser.parse_args()
    pretrain(args) if args.command == "pretrain" else report(args)


if __name__ == "__main__":
    main()

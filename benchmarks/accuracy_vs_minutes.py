"""Linear-probe accuracy against minutes of BYOL pretraining, over seeds, against supervised from scratch.

    python benchmarks/accuracy_vs_minutes.py pretrain --preset fmnist-30min --seed 0 --dir runs-minutes
    python benchmarks/accuracy_vs_minutes.py pretrain --preset fmnist-30min --seed 1 --dir runs-minutes
    python benchmarks/accuracy_vs_minutes.py report --preset fmnist-30min --dir runs-minutes --fractions 0.0111112,1
    python benchmarks/accuracy_vs_minutes.py keep --dir runs-minutes --to benchmarks/measured/scores/fmnist-30min-v2
    python benchmarks/accuracy_vs_minutes.py report ... --dir benchmarks/measured/scores/fmnist-30min-v2 --dir runs-more

``pretrain`` trains one seed and keeps the online encoder every ``--every`` epochs with the training
seconds so far (evaluation time left out), so seeds can run in parallel processes. Pretraining never
looks at labels, so its encoders serve any labelled subset.

``report`` scores every kept encoder with a linear probe on the validation split (the curve; choices
read validation only) and the last one of each finished seed on the test split: linear probe, kNN,
fine-tuning and supervised from scratch on the same labels, beside the floors (random-init kNN, raw-pixel
kNN and logistic regression). Each seed draws its own labelled subset (``data.labelled_subset = "per
seed"``). Every score keeps its per-image test correctness, cached beside the encoders
(``scores-<epoch>-<config digest>.npz``), so one interval covers the training seed, the labelled-subset
draw and the test images (:func:`byol_core.stats.accuracy_summary`, :func:`byol_core.stats.difference`);
the declared primary comparison (BYOL linear probe against supervised from scratch) is judged alone, the
secondary ones with Holm's correction. Fraction 0.0111112 is 600 labels (60 a class) of the 54,000 left
after validation. ``keep`` copies finished seeds' scores without their encoders, and a report reads
seeds from several folders, so seeds pretrained on different machines and days add up. Writes JSON to
benchmarks/results/ (``benchmarks/results_readme.py`` turns the copies kept in benchmarks/measured/ into the
README's tables).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from byol_core import stats
from byol_core.config import ExperimentConfig, load_config, parse_set_args, to_dict, with_overrides
from byol_core.data import DataSplits, load_data
from byol_core.files import atomic_torch_save, atomic_write, atomic_write_json
from byol_core.lab.builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from byol_core.lab.comparison import METHOD_ORDER, PRIMARY, SECONDARY
from byol_core.lab.plans import config_diff
from byol_core.methods import supervised
from byol_core.methods.byol import pretrain_byol
from byol_core.methods.floors import (
    PIXEL_KNN,
    PIXEL_LOGISTIC,
    pixel_knn_predictions,
    pixel_logistic_predictions,
)
from byol_core.methods.loop import StepPlan
from byol_core.methods.networks import build_encoder
from byol_core.methods.pretraining import knn_predictions, prepare_runtime
from byol_core.presets import get_preset
from byol_core.stats_text import clipped_interval, format_ci, format_difference, too_few_seeds_note
from byol_core.studies.sweep import parse_fractions

ENCODER_PREFIX = "online_encoder.model."
# The short key each method's predictions are cached under, and the name every table gives it.
METHODS = {"finetune": FINETUNE.method, "probe": LINEAR.method, "knn": BYOL.method, "scratch": SCRATCH.method,
           "random_knn": KNN.method, "pixel_logistic": PIXEL_LOGISTIC, "pixel_knn": PIXEL_KNN}
KEYS = {name: key for key, name in METHODS.items()}
PROCEDURE = {
    "name": "seeds, labelled subsets and test images",
    "accuracy": "byol_core.stats.accuracy_summary (one seed: Wilson; more: seed t and test-image parts in quadrature)",
    "difference": "byol_core.stats.difference (one seed: exact McNemar; more: as above, p where the interval "
                  "reaches 0)",
    "secondary": "Holm over the secondary comparisons at each label share (byol_core.stats.adjust_holm)",
    "choices": "validation split only (the probe's weight decay, the curve); test scored once per model",
}
# Fields that change which images are labelled, not what pretraining saw; byol.knn_every_epochs is off in pretrain.
_NOT_PRETRAINING = {"data.label_fraction", "data.labelled_subset", "data.subset_seed", "byol.knn_every_epochs"}
_PRETRAINING_SECTIONS = ("data.", "augment.", "model.", "byol.")
RESUME = "resume.pt"  # in a seed's folder while it pretrains
# A seed kept as scores alone (``keep``): each kept encoder's epoch, step and seconds, without its weights.
KEPT = "kept.json"


def _config(args: argparse.Namespace) -> ExperimentConfig:
    return with_overrides(get_preset(args.preset), parse_set_args(args.set))


def _resume_point(out: Path, cfg: ExperimentConfig) -> dict[str, Any] | None:
    """The seed's last loop checkpoint (with its training seconds) when one is there, for these settings only."""
    path = out / RESUME
    if not path.is_file():
        return None
    config_path = out / "config.json"
    if not config_path.is_file():
        raise SystemExit(f"{path} has no config.json beside it: remove {out} to start this seed again")
    # How it runs may change (other threads: other last bits), never what it learns.
    changed = [f"{c.field}: {c.before!r} → {c.after!r}" for c in config_diff(load_config(config_path), cfg, "")
               if not c.field.startswith("runtime.")]
    if changed:
        raise SystemExit(f"{path} was made with other settings ({'; '.join(changed[:5])}): give the settings it "
                         f"was started with, or remove {out} to start this seed again")
    return torch.load(path, map_location="cpu", weights_only=True)


def pretrain(args: argparse.Namespace) -> None:
    cfg = with_overrides(_config(args), {"seed": args.seed, "byol.knn_every_epochs": 0})
    out = Path(args.dir) / f"seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    start = _resume_point(out, cfg)
    splits = load_data(cfg.data)
    plan = StepPlan.for_data(len(splits.pretrain_images()), cfg.byol.optim)  # the plan pretrain_byol makes
    clock = {"train": float(start["train_seconds"]) if start else 0.0, "last": time.perf_counter()}
    if start is not None:
        print(f"seed {args.seed}: resuming at step {start['step']} of {plan.total_steps} "
              f"({clock['train']:.0f} s trained)", flush=True)

    def on_event(event: dict[str, Any]) -> None:
        now = time.perf_counter()
        if event["kind"] == "step":
            clock["train"] += now - clock["last"]
        clock["last"] = now

    def keep(checkpoint: dict[str, Any]) -> None:
        # Every checkpoint the loop makes (each epoch): a seed killed part-way continues from here, the same
        # batches as if it never stopped, its seconds so far carried on (the time between this and a kill is lost).
        atomic_torch_save(out / RESUME, {**checkpoint, "train_seconds": clock["train"]})
        epoch = plan.epochs_done(checkpoint["step"])
        if epoch % args.every and checkpoint["step"] < plan.total_steps:
            return
        state = {k[len(ENCODER_PREFIX):]: v.clone() for k, v in checkpoint["model"].items()
                 if k.startswith(ENCODER_PREFIX)}
        # Atomic: a report running beside the training never reads half a file.
        atomic_torch_save(out / f"epoch{epoch:03d}.pt", {"encoder": state, "epoch": epoch, "step": checkpoint["step"],
                                                         "train_seconds": clock["train"]})
        print(f"seed {args.seed} epoch {epoch} step {checkpoint['step']} {clock['train']:.0f} s", flush=True)
        clock["last"] = time.perf_counter()

    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    pretrain_byol(cfg, splits, callbacks=[on_event], checkpoint=start, save_checkpoint=keep)
    (out / RESUME).unlink(missing_ok=True)  # finished: the kept encoders are what the report reads


# --------------------------------------------------------------------------- scoring one encoder
class PredictionCache:
    """One kept encoder's scores under one config: each method's class per test image (and its validation
    accuracy where it has one), beside the encoders. A rerun scores only what is missing; a changed setting
    (other than runtime ones such as the thread count) is a new file, so nothing stale is read back.
    """

    def __init__(self, seed_dir: Path, cfg: ExperimentConfig, checkpoint: str) -> None:
        settings = {k: v for k, v in to_dict(cfg).items() if k != "runtime"}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.path = seed_dir / f"scores-{Path(checkpoint).stem}-{digest}.npz"
        self.arrays: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as data:
                self.arrays = {k: data[k] for k in data.files}

    def __contains__(self, key: str) -> bool:
        return key in self.arrays

    def get(self, key: str) -> np.ndarray | None:
        return self.arrays.get(key)

    def put(self, **arrays: Any) -> None:
        self.arrays.update({k: np.asarray(v) for k, v in arrays.items()})
        atomic_write(self.path, lambda fh: np.savez(fh, **self.arrays))  # a killed report never leaves half a file


def _last_val(events: list[dict[str, Any]]) -> float:
    vals = [e["val_accuracy"] for e in events if e.get("kind") == "epoch" and "val_accuracy" in e]
    return float(vals[-1]) if vals else float("nan")


def _train(cfg: ExperimentConfig, splits: DataSplits, state: dict[str, torch.Tensor] | None,
           mode: str) -> tuple[np.ndarray, float]:
    """Class per test image and the last validation accuracy of a probe, fine-tuning or training from scratch."""
    events: list[dict[str, Any]] = []
    result = supervised.train_supervised(cfg, splits, mode, encoder_state=state, callbacks=[events.append])
    return result.test_predictions.cpu().numpy().astype(np.int64), _last_val(events)


def score_encoder(cfg: ExperimentConfig, splits: DataSplits, encoder_state: Callable[[], dict[str, torch.Tensor]],
                  cache: PredictionCache, last: bool, device: torch.device, supervised_too: bool = True,
                  pixel_logistic: bool = True) -> None:
    """Fill ``cache`` with what is missing: the validation probe of any kept encoder; for the last one also
    each method's class per test image. Test images are scored once per model, after every choice is made.
    ``encoder_state`` is called only when something is missing, so a seed kept as scores alone reports."""
    if "labels" not in cache:
        cache.put(labels=splits.test.labels.numpy().astype(np.int64), labelled=len(splits.labelled_train))
    if "val_probe" not in cache or (last and "probe" not in cache):
        predicted, val = _train(cfg, splits, encoder_state(), supervised.LINEAR)
        cache.put(probe=predicted, val_probe=val)
    if not last:
        return
    if "knn" not in cache:
        encoder = build_encoder(cfg.model)
        encoder.model.load_state_dict(encoder_state())
        cache.put(knn=knn_predictions(encoder.to(device), splits, cfg, device).numpy())
    if supervised_too:
        for key, mode in (("scratch", supervised.SCRATCH), ("finetune", supervised.FINETUNE)):
            if key not in cache:
                predicted, val = _train(cfg, splits, encoder_state() if key == "finetune" else None, mode)
                cache.put(**{key: predicted, f"val_{key}": val})
    if "random_knn" not in cache:
        torch.manual_seed(cfg.seed)  # the random init of this seed, as the kNN stage draws it
        cache.put(random_knn=knn_predictions(build_encoder(cfg.model).to(device), splits, cfg, device).numpy())
    if "pixel_knn" not in cache:
        cache.put(pixel_knn=pixel_knn_predictions(splits, cfg))
    if pixel_logistic and "pixel_logistic" not in cache:
        predicted = pixel_logistic_predictions(splits, cfg)
        if predicted is not None:
            cache.put(pixel_logistic=predicted)


# --------------------------------------------------------------------------- from per-image scores to the JSON
def _interval(summary: stats.Summary, bounds: tuple[float, float]) -> dict[str, Any]:
    clipped = clipped_interval(summary, bounds)
    return {"n": summary.n, "images": summary.images, "mean": summary.mean,
            "ci": list(summary.ci) if summary.ci else None, "ci_clipped": list(clipped) if clipped else None,
            "half_width": summary.half_width, "seed_std": summary.seed_std, "test_half": summary.test_half,
            "interval_method": summary.method}


def method_result(name: str, correct: dict[int, np.ndarray], val: dict[int, float] | None = None) -> dict[str, Any]:
    """One method at one label share: :func:`stats.accuracy_summary` over its seeds, as JSON with its texts."""
    seeds = sorted(correct)
    summary = stats.accuracy_summary(np.stack([correct[s] for s in seeds]))
    return {"method": name, "seeds": seeds, **_interval(summary, (0.0, 1.0)),
            "values": [float(correct[s].mean()) for s in seeds],
            "val_values": [val[s] for s in seeds] if val and all(s in val for s in seeds) else None,
            "text": format_ci(summary), "note": too_few_seeds_note(summary)}


def _difference(a: str, b: str, correct: dict[str, dict[int, np.ndarray]]) -> stats.Difference | None:
    """``a - b`` over the seeds both were scored on (a seed scored by one alone says nothing of the difference)."""
    if a not in correct or b not in correct:
        return None
    seeds = sorted(set(correct[a]) & set(correct[b]))
    if not seeds:
        return None
    return stats.difference(np.stack([correct[a][s] for s in seeds]), np.stack([correct[b][s] for s in seeds]), a, b)


def comparison_results(correct: dict[str, dict[int, np.ndarray]]) -> list[dict[str, Any]]:
    """The declared comparisons at one label share: PRIMARY on its own, SECONDARY with Holm's correction."""
    primary = _difference(*PRIMARY, correct)
    secondary = [d for d in (_difference(a, b, correct) for a, b in SECONDARY) if d is not None]
    rows = [(primary, True)] if primary is not None else []
    rows += [(d, False) for d in stats.adjust_holm(secondary)]
    return [{"a": d.a_name, "b": d.b_name, "primary": is_primary, **_interval(d.difference, (-1.0, 1.0)),
             "p": d.p_value, "adjusted_p": d.adjusted_p, "correction": d.correction or None, "test": d.test,
             "verdict": d.verdict, "significant": d.significant, "text": format_difference(d)}
            for d, is_primary in rows]


def fraction_result(fraction: float, labelled: int, correct: dict[str, dict[int, np.ndarray]],
                    val: dict[str, dict[int, float]]) -> dict[str, Any]:
    """Everything the JSON holds for one label share; methods in METHOD_ORDER, never sorted by a test number."""
    methods = [method_result(name, correct[name], val.get(name)) for name in METHOD_ORDER if correct.get(name)]
    seeds = sorted({s for by_seed in correct.values() for s in by_seed})
    return {"label_fraction": fraction, "labelled": labelled, "n_seeds": len(seeds), "seeds": seeds,
            "methods": methods, "comparisons": comparison_results(correct)}


def print_fraction(result: dict[str, Any], summaries: dict[str, str]) -> None:
    print(f"\n{result['labelled']:,} labelled images, {result['n_seeds']} seed(s): test accuracy, mean and 95% interval")
    for row in result["methods"]:
        print(f"  {row['method']:>30}  {summaries[row['method']]}")
        if row["note"]:
            print(f"  {'':>30}  {row['note']}")
    for row in result["comparisons"]:
        print(f"  {'PRIMARY' if row['primary'] else 'secondary':>9}  {row['text']}")


# --------------------------------------------------------------------------- report
def _pretraining_mismatch(seed_cfg: ExperimentConfig, cfg: ExperimentConfig) -> list[str]:
    """Fields that decide what pretraining saw and learned, where the seed's saved config and this one differ."""
    return [f"{c.field}: {c.before!r} → {c.after!r}" for c in config_diff(seed_cfg, cfg, "")
            if c.field.startswith(_PRETRAINING_SECTIONS) and c.field not in _NOT_PRETRAINING
            and not (c.field == "data.stratified_caps" and not _has_caps(cfg))]


def _has_caps(cfg: ExperimentConfig) -> bool:
    return any(v is not None for v in (cfg.data.max_train_images, cfg.data.max_test_images))


def _kept(seed_dir: Path) -> list[dict[str, Any]]:
    """Each kept encoder's file name, epoch, step and training seconds, oldest first: read from the encoders
    where they are here, else from the record of a seed kept as scores alone."""
    files = sorted(seed_dir.glob("epoch*.pt"))
    if not files and (seed_dir / KEPT).is_file():
        return json.loads((seed_dir / KEPT).read_text())["encoders"]
    rows = []
    for path in files:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        rows.append({"name": path.name, "epoch": int(ck["epoch"]), "step": int(ck["step"]),
                     "train_seconds": float(ck["train_seconds"])})
    return rows


def _finished(seed_dir: Path, splits: DataSplits, cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """The seed's kept encoders when its last one (the end of the plan) is there, else nothing."""
    kept = _kept(seed_dir)
    plan = StepPlan.for_data(len(splits.pretrain_images()), cfg.byol.optim)
    if not kept or kept[-1]["step"] < plan.total_steps:
        return []
    return kept


def _encoder_loader(seed_dir: Path, name: str) -> Callable[[], dict[str, torch.Tensor]]:
    def load() -> dict[str, torch.Tensor]:
        path = seed_dir / name
        if not path.is_file():
            raise SystemExit(f"{seed_dir} keeps the scores of {name} but not the encoder, and these settings need "
                             "scores it does not hold: report with the settings in its config.json, or pretrain "
                             "this seed again")
        return torch.load(path, map_location="cpu", weights_only=True)["encoder"]
    return load


def _seed_dirs(directories: Sequence[str]) -> list[tuple[int, Path]]:
    """Every seed folder under the given folders; one seed in two of them is refused (which would it be?)."""
    found: dict[int, Path] = {}
    for directory in map(Path, directories):
        for p in sorted(directory.glob("seed*")):
            if not (p.is_dir() and p.name[4:].isdigit()):
                continue
            seed = int(p.name[4:])
            if seed in found:
                raise SystemExit(f"seed {seed} is in both {found[seed]} and {p}: keep one of them")
            found[seed] = p
    return sorted(found.items())


def keep(args: argparse.Namespace) -> None:
    """Keep each finished seed's scores without its encoders (kilobytes, not megabytes), where a later report
    reads them beside seeds pretrained elsewhere: a seed costs an hour of CPU, and machines are replaced."""
    kept_any = False
    for seed, seed_dir in _seed_dirs(args.dir):
        encoders = _kept(seed_dir)
        caches = sorted(seed_dir.glob("scores-*.npz"))
        if not encoders or not caches or not (seed_dir / "config.json").is_file():
            print(f"seed {seed}: nothing scored in {seed_dir} yet; left out", flush=True)
            continue
        out = Path(args.to) / seed_dir.name
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text((seed_dir / "config.json").read_text())
        atomic_write_json(out / KEPT, {"encoders": encoders})
        for cache in caches:
            with np.load(cache, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            atomic_write(out / cache.name, lambda fh, a=arrays: np.savez_compressed(fh, **a))
        print(f"seed {seed}: {len(caches)} score files and {len(encoders)} encoder records in {out}", flush=True)
        kept_any = True
    if not kept_any:
        raise SystemExit(f"no scored seed in {', '.join(args.dir)}: run report first")


def report(args: argparse.Namespace) -> dict[str, Any]:
    base = _config(args)
    device, _ = prepare_runtime(base)
    fractions = parse_fractions(args.fractions)
    seed_dirs = _seed_dirs(args.dir)
    if not seed_dirs:
        raise SystemExit(f"no seed folders in {', '.join(args.dir)}: run the pretrain command first")
    curve: list[dict[str, Any]] = []
    correct: dict[float, dict[str, dict[int, np.ndarray]]] = {f: {} for f in fractions}
    val: dict[float, dict[str, dict[int, float]]] = {f: {} for f in fractions}
    labelled: dict[float, set[int]] = {f: set() for f in fractions}
    minutes: dict[int, float] = {}
    test_labels: np.ndarray | None = None
    for seed, seed_dir in seed_dirs:
        for fraction in fractions:
            cfg = with_overrides(base, {"seed": seed, "data.label_fraction": fraction})
            if (seed_dir / "config.json").is_file():
                mismatch = _pretraining_mismatch(load_config(seed_dir / "config.json"), cfg)
                if mismatch:
                    raise SystemExit(f"{seed_dir} was pretrained with other settings: {'; '.join(mismatch)}")
            splits = load_data(cfg.data)
            kept = _finished(seed_dir, splits, cfg)
            if not kept:
                print(f"seed {seed}: no finished pretraining in {seed_dir} yet; left out", flush=True)
                break
            print(f"seed {seed}, {len(splits.labelled_train):,} labelled images: labelled subset "
                  f"{cfg.data.labelled_subset!r} (subset seed {cfg.data.subset_seed})", flush=True)
            # The last encoder always; the curve every --curve-every epochs (a probe on all labels takes minutes).
            kept = [e for e in kept if e is kept[-1] or e["epoch"] % args.curve_every == 0]
            for encoder in kept:
                last = encoder is kept[-1]
                cache = PredictionCache(seed_dir, cfg, encoder["name"])
                score_encoder(cfg, splits, _encoder_loader(seed_dir, encoder["name"]), cache, last, device,
                              fraction < 1 or args.full_supervised, args.pixel_logistic)
                row = {"seed": seed, "label_fraction": fraction, "labelled": int(cache.get("labelled")),
                       "epoch": encoder["epoch"], "minutes": encoder["train_seconds"] / 60,
                       "val_probe": float(cache.get("val_probe"))}
                if last:
                    labels = cache.get("labels")
                    if test_labels is not None and not np.array_equal(test_labels, labels):
                        raise SystemExit(f"seed {seed} was scored on other test images; the comparison needs "
                                         "one test set (keep data.split_seed and the caps)")
                    test_labels = labels
                    minutes[seed] = encoder["train_seconds"] / 60
                    labelled[fraction].add(row["labelled"])
                    for key, name in METHODS.items():
                        if key in cache:
                            hits = cache.get(key) == labels
                            correct[fraction].setdefault(name, {})[seed] = hits
                            row[f"test_{key}"] = float(hits.mean())
                            if f"val_{key}" in cache:
                                val[fraction].setdefault(name, {})[seed] = float(cache.get(f"val_{key}"))
                curve.append(row)
                print(json.dumps(row), flush=True)
    if not minutes:
        raise SystemExit(f"no seed in {', '.join(args.dir)} has finished pretraining")
    table = _validation_curve(curve, fractions)
    results = []
    for fraction in fractions:
        counts = sorted(labelled[fraction])
        if len(counts) > 1:
            print(f"note: the seeds' labelled subsets at {fraction:g} hold {counts} images")
        result = fraction_result(fraction, counts[-1], correct[fraction], val[fraction])
        texts = {row["method"]: row["text"] for row in result["methods"]}
        print_fraction(result, texts)
        results.append(result)
    spent = [minutes[s] for s in sorted(minutes)]
    out = {"procedure": PROCEDURE, "preset": args.preset,
           "machine": f"{platform.machine()} {torch.get_num_threads()} threads, {platform.processor()}",
           "confidence": 0.95, "labelled_subset": base.data.labelled_subset, "seeds": sorted(minutes),
           "minutes_per_seed": spent, "minutes_range": [min(spent), max(spent)],
           "test_images": int(test_labels.size), "fractions": results, "curve": table, "per_seed": curve,
           "config": to_dict(base)}
    if args.timing_note:
        out["timing_note"] = args.timing_note
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return out


def _validation_curve(curve: list[dict[str, Any]], fractions: Sequence[float]) -> list[dict[str, Any]]:
    """The validation probe against pretraining minutes, mean and t-interval over seeds (validation: for choices)."""
    print("\nvalidation linear probe against pretraining minutes (mean ± 95% t half-width over seeds)")
    table = []
    for epoch in sorted({r["epoch"] for r in curve}):
        rows = [r for r in curve if r["epoch"] == epoch]
        entry: dict[str, Any] = {"epoch": epoch, "minutes": stats.summarize([r["minutes"] for r in rows]).mean}
        for f in fractions:
            values = [r["val_probe"] for r in rows if r["label_fraction"] == f]
            if values:
                s = stats.summarize(values)
                entry[f"val_probe_{f:g}"] = {"mean": s.mean, "ci95": list(s.ci) if s.ci else None, "n": s.n}
        table.append(entry)
        cells = [f"{k[10:]}: {100 * v['mean']:.1f}% (n={v['n']})" for k, v in entry.items() if k.startswith("val_")]
        print(f"  epoch {epoch:>3}  {entry['minutes']:6.1f} min  " + "  ".join(cells))
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pretrain", "report"):
        p = sub.add_parser(name)
        p.add_argument("--preset", default="fmnist-30min")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sub.choices["pretrain"].add_argument("--dir", default="runs-minutes")
    for name in ("report", "keep"):
        p = sub.choices.get(name) or sub.add_parser(name, help="keep finished seeds' scores without their encoders")
        p.add_argument("--dir", action="append", default=None, help="a folder of seeds (repeat it; default runs-minutes)")
    sub.choices["keep"].add_argument("--to", required=True, help="where the seed folders of scores go")
    sub.choices["pretrain"].add_argument("--seed", type=int, default=0)
    sub.choices["pretrain"].add_argument("--every", type=int, default=2, help="keep the encoder every N epochs")
    rep = sub.choices["report"]
    rep.add_argument("--fractions", default="0.01,1")
    rep.add_argument("--curve-every", type=int, default=1,
                     help="score the kept encoders of every N-th epoch for the curve (the last always)")
    rep.add_argument("--full-supervised", action="store_true",
                     help="also train scratch and fine-tune with 100%% of the labels (slow)")
    rep.add_argument("--pixel-logistic", action=argparse.BooleanOptionalAction, default=True,
                     help="score the raw-pixel logistic regression floor (minutes with all labels)")
    rep.add_argument("--timing-note", default=None,
                     help="how the seeds' minutes were taken, when they differ (threads, other load): shown with them")
    rep.add_argument("--out", default=None, help="default: benchmarks/results/accuracy_vs_minutes-<preset>.json")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "pretrain":
        pretrain(args)
        return
    args.dir = args.dir or ["runs-minutes"]
    if args.command == "keep":
        keep(args)
        return
    args.out = args.out or str(ROOT / "benchmarks" / "results" / f"accuracy_vs_minutes-{args.preset}.json")
    report(args)


if __name__ == "__main__":
    main()

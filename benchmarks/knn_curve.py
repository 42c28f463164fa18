"""kNN accuracy against training time for BYOL pretraining, beside random-init and raw-pixel kNN.

    python benchmarks/knn_curve.py --preset cpu-quick [--set byol.optim.epochs=12 ...]

Prints one row per epoch (training seconds, loss, collapse std, kNN accuracy) and the two
references measured in the same process, all on the validation split (a benchmark that tunes
must not look at test), and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from byol_core.config import parse_set_args, to_dict, with_overrides
from byol_core.data import load_data
from byol_core.methods.byol import pretrain_byol
from byol_core.methods.evaluation import knn_accuracy, pixel_features
from byol_core.methods.networks import build_encoder
from byol_core.methods.pretraining import knn_eval, prepare_runtime
from byol_core.presets import get_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-quick")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="benchmarks/results/knn_curve.json")
    args = parser.parse_args()
    cfg = with_overrides(get_preset(args.preset), parse_set_args(args.set))
    cfg = with_overrides(cfg, {"byol.knn_every_epochs": 1})
    splits = load_data(cfg.data)
    device, _ = prepare_runtime(cfg)

    if not len(splits.val):
        raise SystemExit("this benchmark tunes on the validation split: set data.val_fraction > 0")
    torch.manual_seed(cfg.seed)
    random_knn = knn_eval(build_encoder(cfg.model).to(device), splits, cfg, device, queries=splits.val)
    size = cfg.augment.image_size
    pixel_knn = knn_accuracy(pixel_features(splits.labelled_train.images, size, splits.mean, splits.std),
                             splits.labelled_train.labels,
                             pixel_features(splits.val.images, size, splits.mean, splits.std),
                             splits.val.labels, k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature,
                             num_classes=splits.num_classes)

    rows = []
    clock = {"train": 0.0, "last": time.perf_counter()}
    last_step = {}

    def on_event(event):
        now = time.perf_counter()
        if event["kind"] == "step":
            clock["train"] += now - clock["last"]
            last_step.update(event)
        if event["kind"] == "epoch":
            rows.append({"epoch": event["epoch"], "train_seconds": round(clock["train"], 1),
                         "loss": last_step.get("loss"), "collapse_std": last_step.get("collapse_std"),
                         "img_per_s": last_step.get("img_per_s"), "val_knn_accuracy": event.get("val_knn_accuracy")})
            print(f"{rows[-1]['epoch']:>5} {rows[-1]['train_seconds']:>8.1f} {rows[-1]['loss']:>7.4f} "
                  f"{rows[-1]['collapse_std']:>9.4f} {rows[-1]['img_per_s']:>8.0f} "
                  f"{100 * rows[-1]['val_knn_accuracy']:>7.2f}%", flush=True)
        clock["last"] = time.perf_counter()

    print(f"data {splits.name}: {len(splits.pretrain_images())} pretrain, {len(splits.labelled_train)} labelled, "
          f"{len(splits.val)} validation; random-init kNN {100 * random_knn:.2f}%, raw-pixel kNN {100 * pixel_knn:.2f}%")
    print(f"{'epoch':>5} {'train_s':>8} {'loss':>7} {'collapse':>9} {'img/s':>8} {'kNN':>8}")
    clock["last"] = time.perf_counter()
    pretrain_byol(cfg, splits, callbacks=[on_event])
    out = {"machine": f"{platform.machine()} {torch.get_num_threads()} threads, {platform.processor()}",
           "device": str(device), "random_init_knn": random_knn, "raw_pixel_knn": pixel_knn,
           "rows": rows, "config": to_dict(cfg)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The stages BYOL Lab ships: BYOL pretraining, supervised from scratch, fine-tune, linear probe, kNN,
SimCLR, and the two studies built from them (the label-efficiency sweep and the colour ablation).

Each is a registry entry (:mod:`byol_core.stages`) whose body wires a training loop or an
evaluation to the run it fills. The names here are the only place the built-in stage names are
spelled out; everything else refers to these constants or looks stages up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from .errors import save_predictions
from .models import build_encoder, encoder_state_dict
from .stages import Stage, StageContext, register
from .training import TrainResult, knn_eval, prepare_runtime, pretrain_byol, train_supervised


def loop_results(result: TrainResult, ctx: StageContext) -> dict[str, Any]:
    """The results every training stage stores: how far it got, whether it was stopped, the test-set size."""
    return {"_stopped": result.stopped, "step": result.step, "total_steps": result.total_steps,
            **test_facts(ctx.data())}


def test_facts(data: Any) -> dict[str, int]:
    """Test-set size and class count: what it takes to tell a finished accuracy from chance."""
    return {"test_images": len(data.test), "num_classes": int(data.num_classes)}


def pretraining_body(train: Callable[..., TrainResult], encoder_of: Callable[[Any], Any]):
    """A pretraining stage's body: train without labels, export the encoder, score it with kNN."""

    def body(ctx: StageContext) -> dict[str, Any]:
        data = ctx.data()
        result = train(ctx.cfg, data, callbacks=ctx.callbacks, stop_event=ctx.stop_event,
                       checkpoint=ctx.checkpoint(), save_checkpoint=ctx.save_checkpoint)
        encoder = encoder_of(result.model)
        ctx.save_encoder(encoder_state_dict(encoder))
        out = loop_results(result, ctx)
        if not result.stopped and data.labelled_train.labels.numel():
            device, _ = prepare_runtime(ctx.cfg)
            out["knn_accuracy"] = knn_eval(encoder, data, ctx.cfg, device)
        return out

    return body


_byol = pretraining_body(pretrain_byol, lambda model: model.online_encoder)


def _supervised(mode: str, checkpoints: bool = True):
    def body(ctx: StageContext) -> dict[str, Any]:
        encoder_state = ctx.source_encoder()
        checkpoint = ctx.checkpoint() if checkpoints else None
        result = train_supervised(ctx.cfg, ctx.data(), mode, encoder_state=encoder_state,
                                  callbacks=ctx.callbacks, stop_event=ctx.stop_event, checkpoint=checkpoint,
                                  save_checkpoint=ctx.save_checkpoint if checkpoints else None)
        ctx.save_encoder(encoder_state_dict(result.model.encoder))
        if result.test_predictions is not None:  # for the error analysis (confusion matrix, misclassified)
            save_predictions(ctx.run.path / "predictions.npz", result.test_predictions, ctx.data().test.labels,
                             ctx.data().classes)
        return {**loop_results(result, ctx), "test_accuracy": result.test_accuracy, "mode": mode,
                "from_run": ctx.source_run}

    return body


def _knn(ctx: StageContext) -> dict[str, Any]:
    """kNN accuracy of an encoder: the source run's, or a random init seeded with cfg.seed."""
    data = ctx.data()
    device, _ = prepare_runtime(ctx.cfg)
    torch.manual_seed(ctx.cfg.seed)
    encoder = build_encoder(ctx.cfg.model)
    if ctx.source_run:
        encoder.model.load_state_dict(ctx.source_encoder())
    accuracy = knn_eval(encoder.to(device), data, ctx.cfg, device)
    ctx.log({"kind": "eval", "knn_accuracy": accuracy})
    return {"knn_accuracy": accuracy, "from_run": ctx.source_run, "encoder": ctx.source_run or "random-init",
            **test_facts(data)}


BYOL = register(Stage(
    name="byol", title="BYOL pretraining (self-supervised, no labels)", method="BYOL kNN", body=_byol,
    sections=("data", "augment", "model", "byol", "eval", "runtime"), optim_section="byol.optim",
    metric="knn_accuracy", metric_name="kNN accuracy", curve_metric="val_knn_accuracy", pretraining=True, needs_labels=False, family="BYOL",
))
SCRATCH = register(Stage(
    name="scratch", title="Supervised from scratch (baseline)", method="supervised from scratch",
    body=_supervised("scratch"), run_kind="supervised",
    sections=("data", "augment", "model", "supervised", "eval", "runtime"), optim_section="supervised.optim",
))
FINETUNE = register(Stage(
    name="finetune", title="Fine-tune a pretrained encoder (supervised)", method="BYOL fine-tuned",
    body=_supervised("finetune"), run_kind="supervised",
    sections=("data", "augment", "model", "supervised", "eval", "runtime"), optim_section="supervised.optim",
    source="required", family="BYOL",
))
LINEAR = register(Stage(
    name="linear", title="Linear probe on a frozen pretrained encoder", method="BYOL linear probe",
    body=_supervised("linear", checkpoints=False), run_kind="linear",
    sections=("data", "augment", "model", "supervised", "eval", "runtime"),
    optim_section="supervised.linear_optim", source="required", family="BYOL",
    resumable=True,  # a stopped probe starts again: its features are recomputed, the head is cheap
))
KNN = register(Stage(
    name="knn", title="kNN evaluation of an encoder", method="random-init kNN", body=_knn, run_kind="evaluate",
    sections=("data", "augment", "model", "eval", "runtime"), source="optional",
    source_method="kNN (evaluated run)", family_method="{family} kNN", metric="knn_accuracy",
    metric_name="kNN accuracy", resumable=False,
    exports_encoder=False,
), legacy_names=("evaluate",))

# SimCLR, the contrastive baseline; its training lives in byol_core.simclr.
from .simclr import pretrain_simclr

SIMCLR = register(Stage(
    name="simclr", title="SimCLR pretraining (contrastive baseline, no labels)", method="SimCLR kNN",
    body=pretraining_body(pretrain_simclr, lambda model: model.encoder), sections=("data", "augment", "model", "byol", "simclr", "eval", "runtime"),
    optim_section="byol.optim", metric="knn_accuracy", metric_name="kNN accuracy", curve_metric="val_knn_accuracy", pretraining=True,
    needs_labels=False, family="SimCLR",
))


# Studies: stages that run the stages above many times and hold their table (byol_core.studies).
# Their code imports the stages above, so it is imported when a study is first planned or run.
def _study(module: str, function: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(f"{__package__}.{module}"), function)(*args)

    return call


SWEEP = register(Stage(
    name="sweep", title="Label-efficiency sweep (every method at several label fractions, over seeds)",
    method="label-efficiency sweep", body=_study("sweep", "sweep_body"),
    parse_options=_study("sweep", "sweep_options"), sections=("data", "augment", "model", "byol", "supervised",
                                                             "eval", "runtime"),
    metric="", metric_name="", resumable=False, exports_encoder=False, study=True,  # no headline: a table
))
ABLATION = register(Stage(
    name="ablation", title="Colour ablation (BYOL and SimCLR with and without colour augmentation, over seeds)",
    method="colour ablation", body=_study("ablation", "ablation_body"),
    parse_options=_study("ablation", "ablation_options"), sections=("data", "augment", "model", "byol", "simclr",
                                                                   "supervised", "eval", "runtime"),
    metric="", metric_name="", resumable=False, exports_encoder=False, study=True,
))

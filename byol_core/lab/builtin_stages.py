"""The stages BYOL Lab ships: BYOL pretraining, supervised from scratch, fine-tune, linear probe, kNN and
SimCLR (the studies built from them are declared in :mod:`byol_core.studies`).

Each is a registry entry (:mod:`byol_core.lab.stages`) whose body wires a training loop or an
evaluation to the run it fills; the package registers them. The names here are the only place the
built-in stage names are spelled out; everything else refers to these constants or looks stages up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..events import EVAL
from ..methods import supervised
from ..methods.byol import pretrain_byol
from ..methods.loop import TrainResult
from ..methods.networks import build_encoder, encoder_state_dict
from ..methods.pretraining import knn_accuracy_of, knn_predictions, prepare_runtime
from ..methods.simclr import pretrain_simclr
from ..methods.supervised import train_supervised
from .stages import Stage, StageContext


def loop_results(result: TrainResult, ctx: StageContext) -> dict[str, Any]:
    """The results every training stage stores: how far it got, whether it was stopped, the test-set size."""
    return {"_stopped": result.stopped, "step": result.step, "total_steps": result.total_steps,
            **test_facts(ctx.data())}


def test_facts(data: Any) -> dict[str, int]:
    """Test-set size and class count: what it takes to tell a finished accuracy from chance."""
    return {"test_images": len(data.test), "num_classes": int(data.num_classes)}


def _scored_knn(ctx: StageContext, encoder: Any, data: Any, device: torch.device) -> float:
    """Test-set kNN accuracy, its per-image predictions saved beside it (paired comparisons over test images)."""
    predicted = knn_predictions(encoder, data, ctx.cfg, device)
    ctx.save_predictions(predicted, data.test.labels, data.classes)
    return knn_accuracy_of(predicted, data.test.labels)


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
            out["knn_accuracy"] = _scored_knn(ctx, encoder, data, device)
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
            ctx.save_predictions(result.test_predictions, ctx.data().test.labels, ctx.data().classes)
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
    accuracy = _scored_knn(ctx, encoder.to(device), data, device)
    ctx.log({"kind": EVAL, "knn_accuracy": accuracy})
    return {"knn_accuracy": accuracy, "from_run": ctx.source_run, "encoder": ctx.source_run or "random-init",
            **test_facts(data)}


BYOL = Stage(
    name="byol", title="BYOL pretraining (self-supervised, no labels)", method="BYOL kNN", body=_byol,
    optim_section="byol.optim", metric="knn_accuracy", metric_name="kNN accuracy",
    curve_metric="val_knn_accuracy", pretraining=True, needs_labels=False, family="BYOL",
)
SCRATCH = Stage(
    name=supervised.SCRATCH, title="Supervised from scratch (baseline)", method="supervised from scratch",
    body=_supervised(supervised.SCRATCH), run_kind="supervised", optim_section="supervised.optim",
)
FINETUNE = Stage(
    name=supervised.FINETUNE, title="Fine-tune a pretrained encoder (supervised)", method="BYOL fine-tuned",
    body=_supervised(supervised.FINETUNE), run_kind="supervised", optim_section="supervised.optim",
    source="required", family="BYOL",
)
LINEAR = Stage(
    name=supervised.LINEAR, title="Linear probe on a frozen pretrained encoder", method="BYOL linear probe",
    body=_supervised(supervised.LINEAR, checkpoints=False), run_kind=supervised.LINEAR,
    optim_section="supervised.linear_optim", source="required", family="BYOL",
    resumable=True,  # a stopped probe starts again: its features are recomputed, the head is cheap
)
KNN = Stage(
    name="knn", title="kNN evaluation of an encoder", method="random-init kNN", body=_knn, run_kind="evaluate",
    source="optional", source_method="kNN (evaluated run)", family_method="{family} kNN", metric="knn_accuracy",
    metric_name="kNN accuracy", resumable=False, exports_encoder=False,
)
SIMCLR = Stage(  # the contrastive baseline (byol_core.methods.simclr)
    name="simclr", title="SimCLR pretraining (contrastive baseline, no labels)", method="SimCLR kNN",
    body=pretraining_body(pretrain_simclr, lambda model: model.encoder), optim_section="byol.optim",
    metric="knn_accuracy", metric_name="kNN accuracy", curve_metric="val_knn_accuracy", pretraining=True,
    needs_labels=False, family="SimCLR",
)

# Registered in this order by the package (byol_core.lab); knn was called "evaluate" before stages existed.
BUILTIN_STAGES = (BYOL, SCRATCH, FINETUNE, LINEAR, KNN, SIMCLR)
LEGACY_NAMES = {KNN.name: ("evaluate",)}

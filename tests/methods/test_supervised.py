"""Supervised training through the loop (scratch, fine-tune, linear probe): stop and resume, modes, learning.

BYOL pretraining's own loop tests are in test_byol.py."""

import threading

import pytest
import torch

from byol_core.config import with_overrides
from byol_core.methods import byol as byol_module
from byol_core.methods import supervised
from byol_core.methods.byol import pretrain_byol
from byol_core.methods.loop import run_loop
from byol_core.methods.supervised import train_supervised
from tests.helpers import assert_same_weights


def test_supervised_stop_then_resume_matches_the_uninterrupted_run(cfg, splits):
    cfg = with_overrides(cfg, {"supervised.optim.min_steps": 0})  # 2 epochs of 4 steps
    full = train_supervised(cfg, splits, "scratch")
    stop, saved = threading.Event(), []
    first = train_supervised(cfg, splits, "scratch", stop_event=stop, save_checkpoint=saved.append,
                             callbacks=[lambda e: e["kind"] == "epoch" and e["epoch"] == 1 and stop.set()])
    assert first.stopped and first.step == saved[-1]["step"] == 4
    second = train_supervised(cfg, splits, "scratch", checkpoint=saved[-1])
    assert second.finished and second.test_accuracy == full.test_accuracy
    assert_same_weights(full.model, second.model)


def test_every_stage_runs_through_the_shared_loop(cfg, splits, monkeypatch):
    stages = []

    def spy(stage, **kw):
        stages.append(stage.name)
        return run_loop(stage, **kw)

    monkeypatch.setattr(byol_module, "run_loop", spy)
    monkeypatch.setattr(supervised, "run_loop", spy)
    cfg = with_overrides(cfg, {"byol.optim.epochs": 0.25, "supervised.optim.min_steps": 1,
                               "supervised.optim.epochs": 0.25, "supervised.linear_optim.epochs": 1})
    byol = pretrain_byol(cfg, splits)
    encoder = byol.model.online_encoder.model.state_dict()
    for mode in ("scratch", "finetune", "linear"):
        train_supervised(cfg, splits, mode, encoder_state=None if mode == "scratch" else encoder)
    assert stages == ["byol", "scratch", "finetune", "linear"]
    # A scratch baseline that silently started from the encoder would be a fine-tune under another name.
    with pytest.raises(ValueError, match="'scratch' starts from random weights.*'finetune'"):
        train_supervised(cfg, splits, "scratch", encoder_state=encoder)
    assert stages == ["byol", "scratch", "finetune", "linear"]


def test_linear_probe_stops_without_checkpoints_and_keeps_its_classifier(cfg, splits):
    stop, saved = threading.Event(), []
    result = train_supervised(cfg, splits, "linear", stop_event=stop, save_checkpoint=saved.append,
                              callbacks=[lambda e: e["kind"] == "epoch" and stop.set()])
    assert result.stopped and result.step == 1 and saved == []
    assert result.test_accuracy is not None and not result.model.training
    assert result.model.head.out_features == splits.num_classes


@pytest.mark.parametrize("mode", ["scratch", "linear"])
def test_supervised_modes_learn_above_chance(cfg, splits, mode):
    cfg = with_overrides(cfg, {"supervised.optim.epochs": 8, "supervised.linear_optim.epochs": 30})
    events = []
    result = train_supervised(cfg, splits, mode, callbacks=[events.append])
    val = [e["val_accuracy"] for e in events if e["kind"] == "epoch"]  # while training: validation only
    assert len(val) >= 8 and not any("test_accuracy" in e for e in events)
    assert val[-1] > 0.3 and result.test_accuracy > 0.3  # 10 classes: chance is 0.1; test scored once, at the end


def test_finetune_starts_from_the_given_encoder(cfg, splits):
    byol = pretrain_byol(cfg, splits)
    state = {k: v.clone() for k, v in byol.model.online_encoder.model.state_dict().items()}
    cfg0 = with_overrides(cfg, {"supervised.optim.lr": 1e-7, "supervised.optim.epochs": 0.01})
    result = train_supervised(cfg0, splits, "finetune", encoder_state=state)
    for key, value in result.model.encoder.model.state_dict().items():
        if value.dtype.is_floating_point and "running" not in key:
            torch.testing.assert_close(value, state[key], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="needs a BYOL encoder"):
        train_supervised(cfg, splits, "finetune")

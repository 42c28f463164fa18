"""BYOL pretraining and supervised training through the loop: metrics, EMA, stop and resume, modes."""

import threading

import pytest
import torch

from byol_core.config import with_overrides
from byol_core.data import load_data
from byol_core.methods import training
from byol_core.methods.loop import run_loop
from byol_core.methods.training import pretrain_byol, train_supervised
from byol_core.presets import get_preset
from tests.helpers import assert_same_weights


@pytest.fixture(scope="module")
def cfg():
    return get_preset("tiny")


@pytest.fixture(scope="module")
def splits(cfg):
    return load_data(cfg.data)


def test_pretrain_emits_metrics_and_moves_the_target_by_ema(cfg, splits):
    events = []
    result = pretrain_byol(cfg, splits, callbacks=[events.append])
    assert result.finished and result.step == result.total_steps == 8  # 256 images / 64 x 2 epochs
    steps = [e for e in events if e["kind"] == "step"]
    assert steps and all(0.0 <= e["loss"] <= 4.0 for e in steps)
    assert {"lr", "tau", "img_per_s", "collapse_std", "collapse_reference"} <= steps[-1].keys()
    assert steps[-1]["tau"] > steps[0]["tau"] >= cfg.byol.tau_base
    assert [e["epoch"] for e in events if e["kind"] == "epoch"] == [1, 2]
    model = result.model
    online = [p.detach() for p in model.online_encoder.parameters()]
    target = [p.detach() for p in model.target_encoder.parameters()]
    # Both moved away from the shared initialisation, and they are no longer equal.
    assert any(not torch.equal(o, t) for o, t in zip(online, target))


def test_stop_then_resume_gives_the_same_weights_as_an_uninterrupted_run(cfg, splits):
    cfg = with_overrides(cfg, {"runtime.log_every": 1})
    full = pretrain_byol(cfg, splits)

    stop = threading.Event()
    saved = {}

    def stop_after_three(event):
        if event["kind"] == "step" and event["step"] == 3:
            stop.set()

    first = pretrain_byol(cfg, splits, callbacks=[stop_after_three], stop_event=stop,
                          save_checkpoint=lambda state: saved.update(state=state))
    assert first.stopped and first.step == 3 and saved["state"]["step"] == 3
    resumed_events = []
    second = pretrain_byol(cfg, splits, checkpoint=saved["state"], callbacks=[resumed_events.append])
    assert second.finished and second.step == full.step
    assert resumed_events[0]["kind"] == "start" and resumed_events[0]["step"] == 3
    assert_same_weights(full.model, second.model)




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

    monkeypatch.setattr(training, "run_loop", spy)
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







import threading

import pytest
import torch

from byol_core import runner
from byol_core.config import with_overrides
from byol_core.data import load_data
from byol_core.models import BYOL
from byol_core.plans import plan
from byol_core.presets import get_preset
from byol_core.training import TrainingError, pretrain_byol, train_supervised


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
    for a, b in zip(full.model.state_dict().values(), second.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_nan_loss_stops_with_a_clear_message(cfg, splits, monkeypatch):
    original = BYOL.forward

    def poisoned(self, v1, v2):
        out = original(self, v1, v2)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(BYOL, "forward", poisoned)
    with pytest.raises(TrainingError, match="loss became nan at step .*lower the learning rate"):
        pretrain_byol(with_overrides(cfg, {"runtime.log_every": 1}), splits)


@pytest.mark.parametrize("mode", ["scratch", "linear"])
def test_supervised_modes_learn_above_chance(cfg, splits, mode):
    cfg = with_overrides(cfg, {"supervised.optim.epochs": 8, "supervised.linear_optim.epochs": 30})
    events = []
    result = train_supervised(cfg, splits, mode, callbacks=[events.append])
    accs = [e["test_accuracy"] for e in events if e["kind"] == "epoch"]
    assert len(accs) >= 8
    assert result.test_accuracy == accs[-1] > 0.3  # 10 classes: chance is 0.1


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


def test_runner_stores_a_finished_run_with_metrics_and_a_loadable_encoder(cfg, store):
    run = runner.start(plan("byol", cfg), store)
    status = run.read_status()
    assert status["state"] == "finished"
    assert 0.0 <= status["results"]["knn_accuracy"] <= 1.0
    kinds = {e["kind"] for e in run.read_metrics()}
    assert {"start", "step", "epoch"} <= kinds
    assert run.load_checkpoint()["step"] == status["results"]["total_steps"]
    encoder = run.load_encoder()
    assert any(k.startswith("features.") for k in encoder)

    probe = runner.start(plan("linear", cfg, source_run=run.id), store)
    assert probe.read_status()["results"]["from_run"] == run.id
    assert probe.read_status()["state"] == "finished"


def test_runner_resumes_a_stopped_run_to_the_end(cfg, store):
    stop = threading.Event()
    run = runner.start(plan("byol", with_overrides(cfg, {"runtime.log_every": 1})), store,
                       callbacks=[lambda e: e["kind"] == "step" and e["step"] >= 2 and stop.set()],
                       stop_event=stop)
    assert run.read_status()["state"] == "stopped"
    assert run.load_checkpoint()["step"] == 2
    runner.resume(store, run.id)
    status = run.read_status()
    assert status["state"] == "finished" and status["results"]["step"] == status["results"]["total_steps"]
    with pytest.raises(ValueError, match="already finished"):
        runner.resume(store, run.id)


def test_runner_marks_a_failed_run_with_the_reason(cfg, store):
    bad = with_overrides(cfg, {"model.backbone": "resnet19"})
    with pytest.raises(ValueError, match="not a torchvision model"):
        runner.start(plan("byol", bad), store)
    run = store.list()[0]
    status = run.read_status()
    assert status["state"] == "failed" and "resnet19" in status["error"]

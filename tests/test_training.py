import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from byol_core import loop, runner, training
from byol_core.config import OptimConfig, with_overrides
from byol_core.data import load_data
from byol_core.loop import EpochSampler, LoopHooks, Plan, run_loop
from byol_core.models import BYOL
from byol_core.optim import descend
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
    assert_same_weights(full.model, second.model)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa), "resumed weights differ from the uninterrupted run's"


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


def test_plan_counts_steps_from_the_data_size():
    plan = Plan.for_data(10, OptimConfig(batch_size=4, epochs=2.5, warmup_epochs=1))
    assert (plan.batch, plan.steps_per_epoch, plan.total_steps, plan.warmup_steps) == (4, 2, 5, 2)
    assert [s for s in range(1, 6) if plan.ends_epoch(s)] == [2, 4, 5] and plan.epochs_done(5) == 3
    assert Plan.for_data(3, OptimConfig(batch_size=8, epochs=1, min_steps=7)).total_steps == 7
    with pytest.raises(TrainingError, match="at least 2"):
        Plan.for_data(1, OptimConfig())


def test_sampler_epochs_are_permutations_replayable_from_any_step():
    plan = Plan.for_data(10, OptimConfig(batch_size=3, epochs=2))
    sampler = EpochSampler(plan, seed=1, device=torch.device("cpu"))
    batches = [sampler.indices(s).tolist() for s in range(plan.total_steps)]
    first_epoch = {i for b in batches[:3] for i in b}
    assert all(len(b) == 3 for b in batches) and len(first_epoch) == 9
    assert batches[:3] != batches[3:]  # each epoch reshuffles
    fresh = EpochSampler(plan, seed=1, device=torch.device("cpu"))
    assert fresh.indices(4).tolist() == batches[4]


class _ToyHooks(LoopHooks):
    """Linear regression: the loop's contract without a real model."""

    name = "toy"

    def __init__(self, plan: Plan, log: list) -> None:
        torch.manual_seed(0)  # as the entry points do: a resumed run starts from the same initial weights
        model = nn.Linear(2, 1)
        super().__init__(model, torch.optim.SGD(model.parameters(), lr=0.1), plan,
                         OptimConfig(lr=0.1, schedule="constant"), torch.device("cpu"), torch.device("cpu"))
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(plan.num_items, 2, generator=gen)
        self.y = self.x @ torch.tensor([[1.0], [-2.0]])
        self.log = log

    def step(self, step, idx):
        loss = F.mse_loss(self.model(self.x[idx]), self.y[idx])
        descend(self.optimizer, loss, self.learning_rate(step))
        return {"loss": loss}

    def evaluation_due(self, step, epoch):
        return epoch % 2 == 0

    def evaluate(self):
        self.log.append(("evaluate", self.model.training))
        return {"score": 1.0}

    def checkpoint_due(self, step, epoch):
        return True


def test_loop_reports_evaluates_and_checkpoints_through_the_stage_hooks():
    log: list = []
    plan = Plan.for_data(10, OptimConfig(batch_size=4, epochs=3))  # 2 steps an epoch, 6 in all
    saved = []
    result = loop.run_loop(_ToyHooks(plan, log), seed=0, log_every=3, callbacks=[log.append],
                           save_checkpoint=lambda s: (saved.append(s), log.append(("saved", s["step"]))))
    assert result.finished and result.step == 6 and not result.model.training
    kinds = [e if isinstance(e, tuple) else (e["kind"], e["step"]) for e in log]
    assert kinds == [("start", 0),
                     ("step", 2), ("saved", 2), ("epoch", 2),
                     ("step", 4), ("evaluate", False), ("saved", 4), ("epoch", 4),
                     ("step", 6), ("saved", 6), ("epoch", 6)]
    assert log[7]["score"] == 1.0 and "score" not in log[3]
    assert {"lr", "loss", "img_per_s", "epoch"} <= log[1].keys()

    stop, resumed_log = threading.Event(), []
    first = loop.run_loop(_ToyHooks(plan, []), seed=0, log_every=1, stop_event=stop,
                          callbacks=[lambda e: e["kind"] == "step" and e["step"] == 3 and stop.set()],
                          save_checkpoint=saved.append)
    assert first.stopped and saved[-1]["step"] == 3
    second = loop.run_loop(_ToyHooks(plan, []), seed=0, log_every=1, checkpoint=saved[-1],
                           callbacks=[resumed_log.append])
    assert resumed_log[0]["step"] == 3 and second.finished
    assert_same_weights(result.model, second.model)


def test_nan_loss_stops_with_a_clear_message(cfg, splits, monkeypatch):
    original = BYOL.forward

    def poisoned(self, v1, v2):
        out = original(self, v1, v2)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(BYOL, "forward", poisoned)
    with pytest.raises(TrainingError, match=r"loss became nan at step .*lower learning rate \(python -m byol_core resume <run id> --set byol.optim.lr="):
        pretrain_byol(with_overrides(cfg, {"runtime.log_every": 1}), splits)


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


def test_runner_marks_a_failed_run_with_the_reason(cfg, store, tmp_path):
    from byol_core.data import DataError

    with pytest.raises(ValueError, match="not a torchvision model"):  # refused before a run folder exists
        runner.start(plan("byol", with_overrides(cfg, {"model.backbone": "resnet19"})), store)
    assert store.list() == []
    (tmp_path / "empty").mkdir()
    empty = with_overrides(cfg, {"data.name": "folder", "data.folder": str(tmp_path / "empty")})
    with pytest.raises(DataError, match="no images"):  # fails while running: the run says why
        runner.start(plan("byol", empty), store)
    status = store.list()[0].read_status()
    assert status["state"] == "failed" and "no images" in status["error"]

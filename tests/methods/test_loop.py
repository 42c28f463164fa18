import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from byol_core.config import OptimConfig, with_overrides
from byol_core.methods import loop
from byol_core.methods.byol import BYOL, pretrain_byol
from byol_core.methods.loop import EpochSampler, LoopHooks, StepPlan, TrainingError
from byol_core.methods.optim import descend
from tests.helpers import assert_same_weights


class _ToyHooks(LoopHooks):
    """Linear regression: the loop's contract without a real model."""

    name = "toy"

    def __init__(self, plan: StepPlan, log: list) -> None:
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


def test_plan_counts_steps_from_the_data_size():
    plan = StepPlan.for_data(10, OptimConfig(batch_size=4, epochs=2.5, warmup_epochs=1))
    assert (plan.batch, plan.steps_per_epoch, plan.total_steps, plan.warmup_steps) == (4, 2, 5, 2)
    assert [s for s in range(1, 6) if plan.ends_epoch(s)] == [2, 4, 5] and plan.epochs_done(5) == 3
    assert StepPlan.for_data(3, OptimConfig(batch_size=8, epochs=1, min_steps=7)).total_steps == 7
    with pytest.raises(TrainingError, match="at least 2"):
        StepPlan.for_data(1, OptimConfig())


def test_sampler_epochs_are_permutations_replayable_from_any_step():
    plan = StepPlan.for_data(10, OptimConfig(batch_size=3, epochs=2))
    sampler = EpochSampler(plan, seed=1, device=torch.device("cpu"))
    batches = [sampler.indices(s).tolist() for s in range(plan.total_steps)]
    first_epoch = {i for b in batches[:3] for i in b}
    assert all(len(b) == 3 for b in batches) and len(first_epoch) == 9
    assert batches[:3] != batches[3:]  # each epoch reshuffles
    fresh = EpochSampler(plan, seed=1, device=torch.device("cpu"))
    assert fresh.indices(4).tolist() == batches[4]


def test_loop_reports_evaluates_and_checkpoints_through_the_stage_hooks():
    log: list = []
    plan = StepPlan.for_data(10, OptimConfig(batch_size=4, epochs=3))  # 2 steps an epoch, 6 in all
    saved = []
    result = loop.run_loop(_ToyHooks(plan, log), seed=0, log_every=3, callbacks=[log.append],
                           save_checkpoint=lambda s: (saved.append(s), log.append(("saved", s["step"]))))
    assert result.finished and result.step == 6 and not result.model.training
    kinds = [e if isinstance(e, tuple) else (e["kind"], e["step"]) for e in log]
    assert kinds == [("start", 0),
                     ("step", 2), ("epoch", 2), ("saved", 2),
                     ("step", 4), ("evaluate", False), ("epoch", 4), ("saved", 4),
                     ("step", 6), ("epoch", 6), ("saved", 6)]
    assert log[6]["score"] == 1.0 and "score" not in log[2]
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
        out.predictions = out.predictions * float("nan")  # the loss from them is NaN
        return out

    monkeypatch.setattr(BYOL, "forward", poisoned)
    with pytest.raises(TrainingError, match=r"loss became nan at step .*lower learning rate \(python -m byol_core resume <run id> --set byol.optim.lr="):
        pretrain_byol(with_overrides(cfg, {"runtime.log_every": 1}), splits)


class _Killed(BaseException):
    """The process dying (kill -9) at this point: nothing after it runs."""


def test_every_epoch_event_survives_a_kill_right_after_any_checkpoint():
    """Killed just after each checkpoint in turn and resumed as the runner does (events after the checkpoint's
    step dropped, the loop replaying from it): every step and epoch event is logged exactly once."""
    plan = StepPlan.for_data(10, OptimConfig(batch_size=4, epochs=4))  # 2 steps an epoch, 8 in all
    logged: list[dict] = []
    checkpoint = None
    for kill_at in (2, 4, 6, None):  # each epoch's checkpoint, then a run to the end
        if checkpoint is not None:  # Run.keep_metrics_up_to: what the dead process logged after it is dropped
            logged = [e for e in logged if e["step"] <= checkpoint["step"]]
        saved: list[dict] = []

        def save(state, kill_at=kill_at, saved=saved):
            saved.append(state)
            if state["step"] == kill_at:
                raise _Killed

        try:
            loop.run_loop(_ToyHooks(plan, []), seed=0, log_every=1, checkpoint=checkpoint,
                          callbacks=[logged.append], save_checkpoint=save)
        except _Killed:
            pass
        checkpoint = saved[-1] if saved else checkpoint
    assert [e["step"] for e in logged if e["kind"] == "step"] == list(range(1, 9))
    assert [e["epoch"] for e in logged if e["kind"] == "epoch"] == [1, 2, 3, 4]

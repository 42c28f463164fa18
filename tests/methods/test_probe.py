"""The linear probe's weight-decay selection: heads train independently, the best on validation is kept."""

import pytest
import torch

from byol_core.config import with_overrides
from byol_core.data import load_data
from byol_core.methods.evaluation import predict_accuracy
from byol_core.methods.probe import PROBE_WEIGHT_DECAYS, HeadBank
from byol_core.methods.supervised import train_supervised
from byol_core.presets import get_preset


def _train(bank: HeadBank, x: torch.Tensor, y: torch.Tensor, steps: int = 50) -> None:
    opt = torch.optim.Adam(bank.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        bank.losses(x, y).sum().backward()
        opt.step()


def test_heads_trained_together_match_heads_trained_alone():
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    together = HeadBank(8, 3, (0.0, 0.1))
    alone = HeadBank(8, 3, (0.1,))
    with torch.no_grad():
        alone.weight.copy_(together.weight[1:])
        alone.bias.copy_(together.bias[1:])
    _train(together, x, y)
    _train(alone, x, y)
    torch.testing.assert_close(together.weight[1], alone.weight[0])
    torch.testing.assert_close(together.bias[1], alone.bias[0])
    # ...and the penalty does its job: the decayed head ends with smaller weights than the free one.
    assert together.weight[1].norm() < 0.8 * together.weight[0].norm()


def test_head_bank_needs_a_weight_decay():
    with pytest.raises(ValueError, match="at least one weight decay"):
        HeadBank(4, 2, ())


@pytest.fixture(scope="module")
def tiny():
    cfg = with_overrides(get_preset("tiny"), {"supervised.linear_optim.epochs": 20})
    return cfg, load_data(cfg.data)


def test_probe_keeps_the_head_that_is_best_on_validation(tiny):
    cfg, splits = tiny
    events = []
    result = train_supervised(cfg, splits, "linear", callbacks=[events.append])
    last = [e for e in events if e["kind"] == "epoch"][-1]
    assert last["weight_decay"] in PROBE_WEIGHT_DECAYS
    # The classifier handed back is the kept head (standardisation folded in): it scores what was reported.
    val = predict_accuracy(result.model, splits.val.images, splits.val.labels, cfg.augment.image_size,
                           splits.mean, splits.std, cfg.eval.batch_size, torch.device("cpu"))
    assert val == pytest.approx(last["val_accuracy"], abs=1.5 / len(splits.val))


def test_probe_without_tuning_uses_the_configured_weight_decay(tiny):
    cfg, splits = tiny
    cfg = with_overrides(cfg, {"supervised.linear_tune_weight_decay": False,
                               "supervised.linear_optim.weight_decay": 0.05})
    events = []
    train_supervised(cfg, splits, "linear", callbacks=[events.append])
    assert {e["weight_decay"] for e in events if e["kind"] == "epoch"} == {0.05}

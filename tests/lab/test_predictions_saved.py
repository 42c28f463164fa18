"""Every evaluation keeps its per-image test predictions: kNN stages and pretraining's final kNN score too.

Comparisons pair runs over test images, so the saved correctness must give back exactly the stored accuracy.
"""

import numpy as np
import pytest
import torch

from byol_core.config import with_overrides
from byol_core.data import load_data
from byol_core.lab import runner
from byol_core.lab.plans import plan
from byol_core.methods.networks import build_encoder
from byol_core.methods.pretraining import knn_eval, knn_predictions
from byol_core.presets import get_preset


@pytest.fixture(scope="module")
def cfg():
    return with_overrides(get_preset("tiny"), {"byol.optim.epochs": 1})  # a few steps: only the kNN score matters


def assert_predictions_match_accuracy(run, cfg) -> None:
    status = run.read_status()
    assert status["state"] == "finished"
    predicted, labels, classes = run.load_predictions()
    test = load_data(cfg.data).test
    assert len(predicted) == len(test) and np.array_equal(labels, test.labels.numpy())
    assert classes == [str(i) for i in range(10)]
    correct = run.load_correct()
    assert correct.dtype == bool and np.array_equal(correct, predicted == labels)
    # Exactly, not approximately: the stored score is the mean of these very predictions (float32, as scored).
    assert torch.from_numpy(correct).float().mean().item() == status["results"]["knn_accuracy"]


def test_a_random_init_knn_run_saves_its_test_predictions(cfg, store):
    run = runner.start(plan("knn", cfg), store)
    assert_predictions_match_accuracy(run, cfg)


@pytest.mark.parametrize("stage", ["byol", "simclr"])
def test_a_pretraining_run_saves_the_predictions_behind_its_knn_score(cfg, store, stage):
    run = runner.start(plan(stage, cfg), store)
    assert_predictions_match_accuracy(run, cfg)
    evaluated = runner.start(plan("knn", cfg, source_run=run.id), store)  # the kNN of a pretrained run
    assert_predictions_match_accuracy(evaluated, cfg)
    assert np.array_equal(evaluated.load_predictions()[0], run.load_predictions()[0])  # same encoder, same votes


def test_a_run_without_predictions_has_no_correctness(cfg, store):
    run = store.create("evaluate", cfg)
    assert run.load_predictions() is None and run.load_correct() is None
    np.savez(run.predictions_path, predicted=np.zeros(3, np.int64), labels=np.zeros(2, np.int64), classes=["a"])
    assert run.load_correct() is None  # a damaged file pairs nothing, and raises nothing


def test_knn_eval_is_the_mean_of_knn_predictions(cfg):
    splits = load_data(cfg.data)
    torch.manual_seed(0)
    encoder = build_encoder(cfg.model)
    device = torch.device("cpu")
    for queries in (None, splits.val):
        labels = (splits.test if queries is None else queries).labels
        predicted = knn_predictions(encoder, splits, cfg, device, queries)
        assert predicted.shape == labels.shape and predicted.dtype == torch.long
        assert knn_eval(encoder, splits, cfg, device, queries) == (predicted == labels).float().mean().item()

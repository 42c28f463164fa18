"""Error analysis: predictions, the confusion matrix and the misclassified images."""

import numpy as np
import pytest

from byol_core.analysis.error_analysis import Predictions, knn_predictions, stored_predictions
from byol_core.lab import runner
from byol_core.lab.plans import plan
from byol_core.presets import get_preset


def test_the_confusion_matrix_counts_true_rows_against_predicted_columns():
    pred = Predictions(np.array([0, 1, 1, 2, 2, 2]), np.array([0, 1, 2, 2, 2, 1]), ["a", "b", "c"], "test")
    assert pred.confusion().tolist() == [[1, 0, 0], [0, 1, 1], [0, 1, 2]]
    assert pred.accuracy == pytest.approx(4 / 6)
    assert sorted(pred.misclassified().tolist()) == [2, 5]
    assert len(pred.misclassified(limit=1)) == 1


def test_knn_predictions_reproduce_the_runs_knn_accuracy_and_stored_ones_round_trip(store, tmp_path):
    run = runner.start(plan("byol", get_preset("tiny")), store)
    pred = knn_predictions(store, run.id)
    assert pred.accuracy == pytest.approx(run.read_status()["results"]["knn_accuracy"], abs=1e-6)
    assert pred.confusion().sum() == len(pred.labels) and pred.classes == [str(i) for i in range(10)]
    saved = stored_predictions(store, run.id)  # scored once at the end of pretraining, kept since
    assert saved is not None and saved.source == pred.source == "kNN on the labelled training images"
    assert (saved.predicted == pred.predicted).all() and saved.classes == pred.classes
    (run.path / "predictions.npz").write_bytes(b"damaged")
    assert stored_predictions(store, run.id) is None  # falls back to kNN, never a traceback

"""Where a model fails: per-image test predictions, the confusion matrix and the misclassified images.

kNN predictions of any run with an encoder are computed on demand (the labelled training images
vote, exactly as the run's kNN accuracy was scored). Runs that store ``predictions.npz`` (test
predictions of a trained classifier) are read from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import DataSplits, load_data
from ..lab.run_store import RunStore
from ..lab.summary import summarize_run
from ..methods.evaluation import embed, knn_vote
from ..methods.networks import build_encoder

KNN_SOURCE = "kNN on the labelled training images"


@dataclass(frozen=True)
class Predictions:
    """Predicted and true class of each test image (row i is ``splits.test`` image i)."""

    predicted: np.ndarray  # int64 (N,)
    labels: np.ndarray     # int64 (N,)
    classes: list[str]
    source: str            # what made them: "kNN on the labelled training images", "the trained classifier"

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean()) if len(self.labels) else float("nan")

    def confusion(self) -> np.ndarray:
        """Counts (num_classes, num_classes): row = true class, column = predicted class."""
        k = len(self.classes)
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (self.labels, self.predicted), 1)
        return matrix

    def misclassified(self, limit: int = 24) -> np.ndarray:
        """Test-image indices of wrong predictions, the most frequent confusions first."""
        wrong = np.flatnonzero(self.predicted != self.labels)
        if not len(wrong):
            return wrong
        counts = self.confusion()
        weight = counts[self.labels[wrong], self.predicted[wrong]]
        return wrong[np.argsort(-weight, kind="stable")][:limit]


def knn_predictions(store: RunStore, run_id: str) -> Predictions:
    """Weighted-kNN predictions of the run's encoder on its test set (the labelled training images vote)."""
    summary = summarize_run(store.get(run_id))
    if summary.config is None or not summary.usable_encoder:
        raise ValueError(f"run {run_id} has no finished encoder to score ({summary.damaged or summary.state}).")
    cfg = summary.config
    splits = load_data(cfg.data)
    encoder = build_encoder(cfg.model)
    encoder.model.load_state_dict(store.get(run_id).load_encoder())
    require_class_labels(splits)
    queries = embed(encoder, splits.test.images, cfg.augment.image_size, splits.mean, splits.std, cfg.eval.batch_size)
    predicted = knn_vote(encoder, splits, cfg, queries)
    return Predictions(predicted.numpy().astype(np.int64), splits.test.labels.numpy().astype(np.int64),
                       list(splits.classes), KNN_SOURCE)


def require_class_labels(splits: DataSplits) -> None:
    """A ValueError when the data set has no class labels (then no prediction can be right or wrong)."""
    if splits.num_classes < 2 or not len(splits.labelled_train):
        raise ValueError(f"data set {splits.name!r} has no class labels: there is nothing to be wrong about.")


def stored_predictions(store: RunStore, run_id: str) -> Predictions | None:
    """The test predictions the run saved when it was scored (None also when the file is damaged: the page
    then falls back to kNN predictions), named by what made them: a kNN vote or the trained classifier."""
    stored = store.get(run_id).load_predictions()
    if stored is None:
        return None
    stage = summarize_run(store.get(run_id), store).stage_info
    by_knn = stage is not None and stage.metric == "knn_accuracy"
    return Predictions(*stored, KNN_SOURCE if by_knn else "the trained classifier")

"""Raw-pixel floors: what plain classifiers reach on pixels alone, the bar a learned encoder must clear.

Both are fit on the labelled training subset and scored on the test set. Neither depends on a
training seed: given the split they are deterministic.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..config import ExperimentConfig
from ..data import DataSplits
from .evaluation import knn_predict, pixel_features
from .pretraining import knn_accuracy_of

PIXEL_KNN = "raw-pixel kNN"
PIXEL_LOGISTIC = "raw-pixel logistic regression"


def _pixels(splits: DataSplits, cfg: ExperimentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled-subset and test pixels, resized to the network's input and normalised per channel."""
    size = cfg.augment.image_size
    train = pixel_features(splits.labelled_train.images, size, splits.mean, splits.std)
    test = pixel_features(splits.test.images, size, splits.mean, splits.std)
    return train, test


def pixel_knn_predictions(splits: DataSplits, cfg: ExperimentConfig) -> np.ndarray:
    """Weighted-kNN class of each test image on raw pixels (the same k and temperature as the encoders' kNN)."""
    train_x, test_x = _pixels(splits, cfg)
    train_y = splits.labelled_train.labels
    keep = train_y >= 0  # unlabelled images (-1) do not vote
    return knn_predict(train_x[keep], train_y[keep], test_x, k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature,
                       num_classes=splits.num_classes).numpy().astype(np.int64)


def pixel_knn_accuracy(splits: DataSplits, cfg: ExperimentConfig) -> float:
    """Weighted-kNN test accuracy on raw pixels: the share of :func:`pixel_knn_predictions` that are right."""
    return knn_accuracy_of(torch.from_numpy(pixel_knn_predictions(splits, cfg)), splits.test.labels)


def pixel_logistic_predictions(splits: DataSplits, cfg: ExperimentConfig, max_iter: int = 1000) -> np.ndarray | None:
    """Class of each test image by a multinomial logistic regression on standardised pixels.

    Pixels are standardised per feature with the labelled subset's statistics (what makes one
    regularisation strength work across data sets). None when the subset has fewer than 2 classes.
    """
    # sklearn stays a lazy import: the package imports this module at start-up (studies register their
    # stages) and sklearn.linear_model would add about a second to every `import byol_core`.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    labels = splits.labelled_train.labels.numpy()
    if len(np.unique(labels[labels >= 0])) < 2:
        return None
    train_x, test_x = (x.numpy().astype(np.float64) for x in _pixels(splits, cfg))
    keep = labels >= 0
    scaler = StandardScaler().fit(train_x[keep])
    model = LogisticRegression(max_iter=max_iter)
    with warnings.catch_warnings():
        # A floor reached within max_iter is still a floor; a tiny subset is often separable and never converges.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(scaler.transform(train_x[keep]), labels[keep])
    return np.asarray(model.predict(scaler.transform(test_x)), dtype=np.int64)


def pixel_logistic_accuracy(splits: DataSplits, cfg: ExperimentConfig, max_iter: int = 1000) -> float | None:
    """Test accuracy of :func:`pixel_logistic_predictions`; None when the subset has fewer than 2 classes."""
    predictions = pixel_logistic_predictions(splits, cfg, max_iter)
    return None if predictions is None else float(np.mean(predictions == splits.test.labels.numpy()))

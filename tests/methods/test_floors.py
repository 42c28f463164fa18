"""Raw-pixel floors: per-image test predictions, and accuracies that are exactly their mean."""

import dataclasses

import numpy as np
import pytest
import torch

from byol_core.data import ImageSet
from byol_core.methods.evaluation import knn_accuracy, pixel_features
from byol_core.methods.floors import (
    pixel_knn_accuracy,
    pixel_knn_predictions,
    pixel_logistic_accuracy,
    pixel_logistic_predictions,
)


def with_labels(splits, labels: torch.Tensor):
    """The splits with the labelled subset relabelled (-1: unlabelled)."""
    return dataclasses.replace(splits, labelled_train=ImageSet(splits.labelled_train.images, labels))


@pytest.fixture(scope="module")
def partly_labelled(splits):
    labels = splits.labelled_train.labels.clone()
    labels[::3] = -1  # unlabelled images must not vote nor be fit
    return with_labels(splits, labels)


@pytest.mark.parametrize("which", ["splits", "partly_labelled"])
def test_pixel_knn_accuracy_is_the_mean_of_its_predictions_and_unchanged(cfg, request, which):
    splits = request.getfixturevalue(which)
    predicted = pixel_knn_predictions(splits, cfg)
    assert predicted.dtype == np.int64 and predicted.shape == (len(splits.test),)
    accuracy = pixel_knn_accuracy(splits, cfg)
    assert accuracy == torch.from_numpy(predicted == splits.test.labels.numpy()).float().mean().item()
    # The float callers stored before predictions existed: kNN on the same pixels, scored in one step.
    size = cfg.augment.image_size
    before = knn_accuracy(pixel_features(splits.labelled_train.images, size, splits.mean, splits.std),
                          splits.labelled_train.labels,
                          pixel_features(splits.test.images, size, splits.mean, splits.std), splits.test.labels,
                          k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature, num_classes=splits.num_classes)
    assert accuracy == before


@pytest.mark.parametrize("which", ["splits", "partly_labelled"])
def test_pixel_logistic_accuracy_is_the_mean_of_its_predictions(cfg, request, which):
    splits = request.getfixturevalue(which)
    predicted = pixel_logistic_predictions(splits, cfg, max_iter=50)
    assert predicted.dtype == np.int64 and predicted.shape == (len(splits.test),)
    assert pixel_logistic_accuracy(splits, cfg, max_iter=50) == float(np.mean(predicted == splits.test.labels.numpy()))


def test_pixel_logistic_floor_is_none_with_fewer_than_two_classes(cfg, splits):
    one_class = with_labels(splits, torch.where(splits.labelled_train.labels == 0, 0, -1))
    assert pixel_logistic_predictions(one_class, cfg) is None
    assert pixel_logistic_accuracy(one_class, cfg) is None

"""Slow learning tests on real data: they fail if BYOL does not learn."""

import os

import pytest
import torch

from byol_core.augment.views import BYOLAugment
from byol_core.config import with_overrides
from byol_core.data import DataError, load_data
from byol_core.methods.byol import BYOL, pretrain_byol
from byol_core.methods.evaluation import view_agreement
from byol_core.presets import get_preset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fashion():
    # A 9k-image, width-16 slice of cpu-quick keeps this test to about a minute and a half on 2 cores.
    cfg = with_overrides(get_preset("cpu-quick"), {"byol.optim.epochs": 6, "byol.knn_every_epochs": 3,
                                                   "data.max_train_images": 10_000, "data.max_test_images": 5_000,
                                                   "model.width": 16, "data.download": False})
    try:
        return cfg, load_data(cfg.data)
    except DataError as exc:
        if os.environ.get("BYOL_REQUIRE_FASHION_MNIST"):
            raise
        pytest.skip(f"Fashion-MNIST is not on this machine ({exc}); apt-get install dataset-fashion-mnist")


def test_byol_learns_on_fashion_mnist(fashion):
    cfg, splits = fashion
    probe_images = splits.test.images[:512]
    augment = BYOLAugment(cfg.augment, splits.mean, splits.std)
    torch.manual_seed(cfg.seed)  # pretrain_byol seeds the same way before building its model
    initial = BYOL.from_config(cfg.model, cfg.augment.image_size)
    before_same, _ = view_agreement(initial.online_encoder, probe_images, augment)

    events = []
    result = pretrain_byol(cfg, splits, callbacks=[events.append])
    after_same, after_different = view_agreement(result.model.online_encoder, probe_images, augment)

    steps = [e for e in events if e["kind"] == "step"]
    knn = [e["val_knn_accuracy"] for e in events if "val_knn_accuracy" in e]  # the curve: validation split
    # Two views of one image now land clearly closer together than at initialisation...
    assert after_same > before_same + 0.15, (before_same, after_same)
    # ...while different images do not: the encoder separates rather than collapses,
    assert abs(after_different) < 0.2, after_different
    # and the projections stay spread (healthy ~ 1/sqrt(d), collapsed ~ 0).
    assert steps[-1]["collapse_std"] > 0.5 * steps[-1]["collapse_reference"], steps[-1]
    # The loss fell, and the representation classifies far above chance (10 classes).
    assert steps[-1]["loss"] < 0.6 * steps[0]["loss"]
    assert knn[-1] > 0.7, knn

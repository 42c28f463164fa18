"""Data facts that must not drift: exact per-channel statistics, class names written out."""

from __future__ import annotations

import torch

from byol_core.config import DataConfig
from byol_core.data import clear_cache, load_data


def test_the_statistics_do_not_depend_on_the_thread_count():
    threads = torch.get_num_threads()
    seen = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            clear_cache()
            splits = load_data(DataConfig(name="digits"))
            seen.append((splits.mean, splits.std))
    finally:
        torch.set_num_threads(threads)
        clear_cache()
    assert seen[0] == seen[1]
    # digits' pixels (0..16 scaled to 0..255) are mostly dark: a mean near 0.3 and a std near 0.38.
    (mean,), (std,) = seen[0]
    assert 0.25 < mean < 0.35 and 0.33 < std < 0.42


def test_fashion_mnist_names_its_classes_as_torchvision_does():
    # Reading Debian's files needs no torchvision (its import costs seconds), so the names are written out here.
    from torchvision.datasets import FashionMNIST

    from byol_core.data.builtin import FASHION_CLASSES

    assert list(FASHION_CLASSES) == list(FashionMNIST.classes)

"""The methods wing's shared fixtures: the tiny preset and its data, loaded once per module."""

import pytest

from byol_core.data import load_data
from byol_core.presets import get_preset


@pytest.fixture(scope="module")
def cfg():
    return get_preset("tiny")


@pytest.fixture(scope="module")
def splits(cfg):
    return load_data(cfg.data)

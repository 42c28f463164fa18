"""Caps keep each class's share; the labelled subset moves with the training seed unless held fixed."""

import numpy as np
import pytest

from byol_core.config import DataConfig, ExperimentConfig, from_dict, to_dict, with_overrides
from byol_core.data import load_data
from byol_core.data.splits import stratified_counts


@pytest.mark.parametrize(("sizes", "cap"), [([50, 30, 20], 10), ([7, 7, 7], 20), ([1000, 3, 1], 50), ([5], 5)])
def test_stratified_counts_sum_to_the_cap_and_follow_each_class_share(sizes, cap):
    sizes = np.array(sizes)
    counts = stratified_counts(sizes, cap)
    assert counts.sum() == cap
    assert np.all(np.abs(counts - cap * sizes / sizes.sum()) < 1)
    assert np.all(counts <= sizes)


def _per_class(labels) -> np.ndarray:
    return np.bincount(labels.numpy(), minlength=10)


def test_capped_test_and_validation_sets_hold_each_class_share():
    # The tiny preset's caps: 128 test and validation images of digits (random caps gave 10-14 a class).
    cfg = DataConfig(val_fraction=0.2, max_test_images=128, max_train_images=600)
    splits, whole = load_data(cfg), load_data(DataConfig(val_fraction=0.2))
    for part, before, cap in ((splits.test, whole.test, 128), (splits.val, whole.val, 128),
                              (splits.train, whole.train, 600)):
        share = cap * _per_class(before.labels) / len(before)
        assert len(part) == cap and np.all(np.abs(_per_class(part.labels) - share) < 1)
    legacy = load_data(DataConfig(val_fraction=0.2, max_test_images=128, max_train_images=600, stratified_caps=False))
    assert len(legacy.test) == 128
    assert np.abs(_per_class(legacy.test.labels) - 128 * _per_class(whole.test.labels) / len(whole.test)).max() >= 1


def _labelled(seed: int, **data) -> set[int]:
    cfg = with_overrides(ExperimentConfig(seed=seed, data=DataConfig(label_fraction=0.05, val_fraction=0.1, **data)),
                         {})
    splits = load_data(cfg.data)
    # Images are identified by their bytes (the subset is a copy), which are distinct in digits' train split.
    return {hash(bytes(x.numpy())) for x in splits.labelled_train.images}, splits


def test_each_seed_draws_its_own_labelled_subset_from_the_same_test_and_validation_sets():
    subset0, splits0 = _labelled(0)
    subset1, splits1 = _labelled(1)
    assert subset0 != subset1 and len(subset0) == len(subset1)
    assert np.array_equal(splits0.test.labels.numpy(), splits1.test.labels.numpy())
    assert np.array_equal(splits0.val.images.numpy(), splits1.val.images.numpy())
    assert _labelled(1)[0] == subset1  # a seed's subset is reproducible
    assert _labelled(0, labelled_subset="fixed")[0] == _labelled(1, labelled_subset="fixed")[0]


def test_the_run_seed_sets_the_subset_seed_and_a_fixed_subset_ignores_it():
    assert ExperimentConfig(seed=7).data.subset_seed == 7
    assert with_overrides(ExperimentConfig(seed=7), {"seed": 3}).data.subset_seed == 3
    fixed = ExperimentConfig(seed=7, data=DataConfig(labelled_subset="fixed"))
    assert fixed.data.subset_seed == 0  # so a fixed subset's configs differ only in the seed


def test_configs_saved_before_the_subset_policy_load_as_what_they_ran():
    data = to_dict(ExperimentConfig(seed=4))
    for key in ("labelled_subset", "subset_seed", "stratified_caps"):
        del data["data"][key]
    cfg = from_dict(ExperimentConfig, data)
    assert (cfg.data.labelled_subset, cfg.data.stratified_caps, cfg.data.subset_seed) == ("fixed", False, 0)
    assert from_dict(ExperimentConfig, to_dict(ExperimentConfig())).data.labelled_subset == "per seed"

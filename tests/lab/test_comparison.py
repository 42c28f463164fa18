"""Comparisons like with like: runs grouped by their settings, the declared pair reported whatever the test
numbers, differences paired over seeds and test images (seeds alone for old runs, said so), Holm for the rest."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from byol_core import stats
from byol_core.config import ExperimentConfig, with_overrides
from byol_core.lab import comparison
from byol_core.lab.annotations import annotate
from byol_core.lab.builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from byol_core.lab.run_store import Run, RunStore
from byol_core.lab.stages import get_stage
from byol_core.lab.summary import list_summaries
from byol_core.presets import get_preset
from byol_core.studies.experiment import run_experiment
from byol_core.studies.sweep import run_sweep

_clock = itertools.count()
N_TEST = 60


def tiny(**overrides) -> ExperimentConfig:
    return with_overrides(get_preset("tiny"), overrides)


def finished_run(store: RunStore, cfg: ExperimentConfig, stage: str, correct: np.ndarray | None,
                 source: Run | None = None, accuracy: float | None = None) -> Run:
    """A run that reads as finished, with per-image predictions giving ``correct`` (None: saved none, as runs
    made before predictions were kept), without training."""
    info = get_stage(stage)
    run = store.create(info.run_kind, cfg, {"mode": stage, "from_run": source.id if source else None}, stage=stage)
    if correct is not None:
        labels = torch.zeros(len(correct), dtype=torch.int64)
        run.save_predictions(torch.where(torch.as_tensor(correct), 0, 1), labels, ["zero", "one"])
    value = float(np.mean(correct)) if accuracy is None else accuracy
    size = len(correct) if correct is not None else N_TEST
    run.set_status("finished", results={info.metric: value, "test_images": size, "num_classes": 2},
                   finished=1.7e9 + next(_clock))
    return run


def hits(accuracy: float, seed: int, n: int = N_TEST) -> np.ndarray:
    """Per-image correctness with exactly ``accuracy`` of ``n`` right, in an order that moves with ``seed``."""
    row = np.arange(n) < round(accuracy * n)
    return np.random.default_rng(seed).permutation(row)


def method_set(store: RunStore, cfg: ExperimentConfig, accuracies: dict[str, float], seeds=(0, 1, 2),
               with_predictions: bool = True) -> list[Run]:
    """One seed's BYOL run and the runs from it per seed: keys 'byol', 'linear', 'finetune', 'scratch', 'random'."""
    runs = []
    for seed in seeds:
        seeded = with_overrides(cfg, {"seed": seed})

        def correct(name: str, seed=seed) -> np.ndarray | None:
            return hits(accuracies[name], 100 * seed + len(name)) if with_predictions else None

        byol = finished_run(store, seeded, BYOL.name, correct("byol"), accuracy=accuracies["byol"])
        runs.append(byol)
        for name, stage, source in (("linear", LINEAR.name, byol), ("finetune", FINETUNE.name, byol),
                                    ("scratch", SCRATCH.name, None), ("random", KNN.name, None)):
            if name in accuracies:
                runs.append(finished_run(store, seeded, stage, correct(name), source, accuracies[name]))
    return runs


def _results(store: RunStore, group: comparison.Group) -> dict[str, comparison.MethodResult]:
    return comparison.method_results(group, lambda s: store.get(s.id).load_correct())


# --------------------------------------------------------------------------- groups
def test_two_presets_at_one_data_set_and_label_share_are_two_groups_and_seeds_are_one(store):
    quick = with_overrides(get_preset("digits-quick"), {"name": "digits-quick"})
    small = tiny(**{"data.label_fraction": 0.05})  # same data set and label share, other settings
    a = method_set(store, quick, {"byol": 0.9, "linear": 0.8, "scratch": 0.7})
    b = method_set(store, small, {"byol": 0.5, "linear": 0.4, "scratch": 0.3, "random": 0.3}, seeds=(0, 1))
    damaged = finished_run(store, small, BYOL.name, hits(0.5, 9))
    damaged.status_path.write_text("{broken")
    archived = finished_run(store, small, BYOL.name, hits(0.5, 8))
    annotate(archived, archived=True)
    summaries = list_summaries(store)

    groups = comparison.group_runs(summaries)
    assert [{r.id for r in g.runs} for g in groups] == [{r.id for r in a}, {r.id for r in b}]  # most runs first
    assert groups[0].short() == "digits · 5% labels · digits-quick"
    assert groups[0].label().startswith("digits · 5% labels · digits-quick · 9 runs · newest ")
    assert [r.id for r in comparison.left_out(summaries)] == [damaged.id]
    # A run's seed never splits a group; its settings do.
    assert comparison.comparison_key(with_overrides(small, {"seed": 7, "name": "other"})) == groups[1].key
    assert comparison.comparison_key(with_overrides(small, {"eval.knn_k": 7})) != groups[1].key

    [line] = comparison.group_differences(groups[1], groups)
    assert line.startswith("vs digits · 5% labels · digits-quick (9 runs): ")
    assert "data.max_test_images 128 → none" in line and line.endswith(" more")
    fields = line.split(": ", 1)[1].split(", ")
    assert not [f for f in fields if f.startswith(("name ", "seed ", "runtime."))]  # these are no differences
    assert groups[1].methods == [LINEAR.method, BYOL.method, SCRATCH.method, KNN.method]  # METHOD_ORDER


def test_each_group_says_how_its_labelled_subset_was_drawn(store):
    finished_run(store, tiny(), SCRATCH.name, hits(0.5, 1))
    finished_run(store, tiny(**{"data.labelled_subset": "fixed"}), SCRATCH.name, hits(0.5, 1))
    groups = comparison.group_runs(list_summaries(store))
    texts = {g.config.data.labelled_subset: g.subset_text() for g in groups}
    assert texts["per seed"].startswith("Labelled subset: drawn per seed")
    assert texts["fixed"].startswith("Labelled subset: fixed across seeds")


def test_runs_of_one_experiment_share_one_key_and_one_group(store):
    run_experiment(tiny(), store)
    stage_runs = [s for s in list_summaries(store) if not s.stage_info.study]
    assert len(stage_runs) == 5
    assert len({comparison.comparison_key(s.config) for s in stage_runs}) == 1
    [group] = comparison.group_runs(list_summaries(store))
    results = _results(store, group)
    assert list(results) == [FINETUNE.method, LINEAR.method, BYOL.method, SCRATCH.method, KNN.method]
    assert all(r.per_image and r.note == "" and r.summary.images == 128 for r in results.values())
    primary, _ = comparison.declared_comparisons(results)
    assert primary is not None and primary.per_image and primary.difference.test == "exact McNemar"


def test_a_sweeps_runs_group_by_label_share_with_every_seed_in_its_group(store):
    short = {"byol.optim.epochs": 1, "supervised.optim.epochs": 1, "supervised.optim.min_steps": 0,
             "supervised.linear_optim.epochs": 1}  # seconds: what is checked here is where each run lands
    run_sweep(tiny(**short), store, [0.5, 1.0], seeds=2)
    groups = comparison.group_runs(list_summaries(store))
    assert sorted(g.config.data.label_fraction for g in groups) == [0.5, 1.0]
    for group in groups:
        assert group.name == "tiny"  # the sweep's -s<seed>-f<fraction> suffixes are not another config
        results = _results(store, group)
        assert list(results) == [FINETUNE.method, LINEAR.method, BYOL.method, SCRATCH.method, KNN.method]
        # Both seeds for each method, once each (at 100% the pretraining's own kNN and the kNN stage are one seed)
        assert all(r.seeds == (0, 1) and r.per_image for r in results.values())
        assert {r.summary.method for r in results.values()} == {stats.SEEDS_AND_IMAGES}


# --------------------------------------------------------------------------- declared, never picked by a number
def test_the_declared_pair_is_reported_even_when_another_method_scores_higher(store):
    method_set(store, tiny(), {"byol": 0.95, "linear": 0.5, "finetune": 0.6, "scratch": 0.7, "random": 0.4})
    results = _results(store, comparison.group_runs(list_summaries(store))[0])
    primary, secondary = comparison.declared_comparisons(results)
    assert (primary.a, primary.b) == comparison.PRIMARY == (LINEAR.method, SCRATCH.method)
    assert primary.difference.difference.mean == pytest.approx(-0.2)  # the declared pair, though it lost
    assert comparison.default_pair(results) == comparison.PRIMARY
    # Another declared pair is primary; it leaves the secondary list, the default primary does not join it.
    mine, others = comparison.declared_comparisons(results, (BYOL.method, KNN.method))
    assert (mine.a, mine.b) == (BYOL.method, KNN.method)
    assert (BYOL.method, KNN.method) not in {(c.a, c.b) for c in others}
    assert len(others) == len(secondary) - 1
    # Without the primary's methods the first declared secondary pair is the default, again not by a number.
    assert comparison.default_pair([KNN.method, BYOL.method, SCRATCH.method]) == (BYOL.method, SCRATCH.method)
    assert comparison.declared_comparisons(results, None)[0] is None


# --------------------------------------------------------------------------- every source of noise
def test_differences_pair_per_image_rows_by_seed_and_fall_back_to_values_without_them(store):
    method_set(store, tiny(), {"byol": 0.8, "linear": 0.75, "scratch": 0.6}, seeds=(2, 0, 1))
    group = comparison.group_runs(list_summaries(store))[0]
    results = _results(store, group)
    linear, scratch = results[LINEAR.method], results[SCRATCH.method]
    assert linear.seeds == (0, 1, 2) and linear.correct.shape == (3, N_TEST)
    assert linear.summary == stats.accuracy_summary(linear.correct)
    primary, _ = comparison.declared_comparisons(results)
    assert primary.per_image and primary.seeds == (0, 1, 2) and primary.note == ""
    assert primary.difference == stats.difference(linear.correct, scratch.correct, LINEAR.method, SCRATCH.method)
    assert primary.difference.test == stats.SEEDS_AND_IMAGES
    assert primary.difference.difference.mean == pytest.approx(0.15)

    # The same runs without predictions.npz (made before they were saved): seeds only, and the page is told so.
    for run in store.list():
        run.predictions_path.unlink()
    old = _results(store, comparison.group_runs(list_summaries(store))[0])
    assert not old[LINEAR.method].per_image and old[LINEAR.method].summary == stats.summarize(linear.values)
    assert old[LINEAR.method].note.startswith("seeds only: 3 of its 3 runs have no per-image scores")
    fallback, _ = comparison.declared_comparisons(old)
    assert not fallback.per_image and fallback.note.startswith("seeds only")
    assert fallback.difference.test in ("paired t", "none")
    assert fallback.difference.difference.images is None  # no test images behind it


def test_one_old_run_sends_its_method_to_seeds_only_and_a_rerun_replaces_its_seed(store):
    cfg = tiny()
    finished_run(store, cfg, SCRATCH.name, None, accuracy=0.5)  # seed 0, no predictions
    rerun = finished_run(store, cfg, SCRATCH.name, hits(0.7, 1))  # seed 0 again, newer: it replaces the first
    finished_run(store, cfg, LINEAR.name, hits(0.6, 2), accuracy=0.6)
    results = _results(store, comparison.group_runs(list_summaries(store))[0])
    assert results[SCRATCH.method].run_ids == (rerun.id,) and results[SCRATCH.method].per_image
    single = results[SCRATCH.method].summary
    assert single.method == "wilson" and single.n == 1 and single.images == N_TEST

    lone = finished_run(store, with_overrides(cfg, {"seed": 1}), SCRATCH.name, None, accuracy=0.65)
    results = _results(store, comparison.group_runs(list_summaries(store))[0])
    assert not results[SCRATCH.method].per_image
    assert lone.id in results[SCRATCH.method].note and "1 of its 2 runs" in results[SCRATCH.method].note


def test_scores_that_do_not_give_the_runs_accuracy_are_not_used(store):
    finished_run(store, tiny(), SCRATCH.name, hits(0.5, 1), accuracy=0.9)
    [result] = _results(store, comparison.group_runs(list_summaries(store))[0]).values()
    assert not result.per_image and "do not give its accuracy" in result.note


def test_secondary_comparisons_are_judged_with_holm(store):
    method_set(store, tiny(), {"byol": 0.9, "linear": 0.75, "finetune": 0.8, "scratch": 0.6, "random": 0.55})
    results = _results(store, comparison.group_runs(list_summaries(store))[0])
    primary, secondary = comparison.declared_comparisons(results)
    assert primary.difference.adjusted_p is None  # the declared comparison is judged on its own
    assert [(c.a, c.b) for c in secondary] == [(FINETUNE.method, SCRATCH.method), (BYOL.method, SCRATCH.method),
                                               (BYOL.method, KNN.method)]
    raw = [c.difference.p_value for c in secondary]
    assert [c.difference.adjusted_p for c in secondary] == pytest.approx(stats.holm(raw))
    assert all(c.difference.adjusted_p >= c.difference.p_value for c in secondary)
    assert {c.difference.correction for c in secondary} == {"Holm over 3"}
    assert all("Holm-adjusted p" in c.difference.verdict for c in secondary)

"""Guard rails: jobs that cannot work on the data are blocked, misleading numbers are warned about."""

from __future__ import annotations

import numpy as np
import pytest

from byol_core.config import DataConfig, with_overrides
from byol_core.data import load_data
from byol_core.lab.choices import DataChoice
from byol_core.lab.guards import (
    NO_LABELS,
    DataFacts,
    Guard,
    chance_note,
    check_job,
    check_spec,
    data_facts,
    noise_half_width,
)
from byol_core.lab.plans import plan
from byol_core.presets import get_preset
from byol_core.stats import wilson_interval
from tests.app_helpers import _app, _errors, _page

PLENTY = 100_000  # test images enough that the interval warning stays quiet


def _flat_folder(folder, count: int = 6):
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


def _cfg(k: int = 20, label_fraction: float = 0.05):
    return with_overrides(get_preset("tiny"), {"eval.knn_k": k, "data.label_fraction": label_fraction})


def _facts(per_class=(50, 50), test_images: int = PLENTY) -> DataFacts:
    return DataFacts(classes=tuple(f"c{i}" for i in range(len(per_class))), labelled_per_class=tuple(per_class),
                     test_images=test_images)


def test_jobs_that_need_labels_are_blocked_on_unlabelled_data(tmp_path):
    folder = _flat_folder(tmp_path / "flat")
    splits = load_data(DataConfig(name="folder", folder=str(folder), folder_image_size=8, root=str(tmp_path)))
    facts = data_facts(splits)
    assert facts.num_classes == 0 and facts.labelled_per_class == ()
    for stage in ("scratch", "finetune", "linear", "knn"):
        assert check_job(stage, _cfg(), facts) == [Guard("block", NO_LABELS)], stage
    assert check_job("byol", _cfg(), facts) == [] and check_job("simclr", _cfg(), facts) == []  # no labels needed
    assert "no class labels (a flat folder or unlabelled upload)" in NO_LABELS

    spec = plan("scratch", get_preset("tiny"), data=DataConfig(name="folder", folder=str(folder), root=str(tmp_path)))
    assert [g.level for g in check_spec(spec)] == ["block"]  # the Train page's call: loads the job's own data
    gone = plan("scratch", get_preset("tiny"), data=DataConfig(name="folder", folder=str(tmp_path / "nope")))
    [missing] = check_spec(gone)  # a folder that is not there: blocked before a run folder is made
    assert missing.level == "block" and "does not exist" in missing.message


def test_image_folders_that_cannot_serve_are_blocked_before_a_run_folder(tmp_path):
    import os

    from byol_core.data import DataError
    from byol_core.lab import runner
    from byol_core.lab.guards import folder_problem
    from byol_core.lab.run_store import RunStore

    store = RunStore(tmp_path / "runs")
    (tmp_path / "empty").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to-proc").symlink_to("/proc", target_is_directory=True)
    hidden = _flat_folder(tmp_path / "hidden" / ".cache")  # images in hidden folders are never read
    cases = {"/proc": "system folder", "/proc/self": "system folder", "/sys": "system folder",
             "/dev/shm": "system folder", str(tmp_path / "to-proc"): "system folder",
             str(tmp_path / "nope"): "does not exist", str(tmp_path / "fifo"): "not a directory",
             str(tmp_path / "empty"): "holds no images", str(hidden.parent): "holds no images"}
    for folder, why in cases.items():
        data = DataConfig(name="folder", folder=folder)
        problem = folder_problem(data)
        assert problem and problem.startswith(f"data.folder = {folder!r}") and why in problem, (folder, problem)
        spec = plan("byol", get_preset("tiny"), data=data)
        assert check_spec(spec) == [Guard("block", problem)]
        with pytest.raises(DataError, match=why):
            runner.create(store, spec)
        assert store.list() == [] and not store.root.exists()
    good = _flat_folder(tmp_path / "good" / "cats")  # images in a class subfolder only
    assert folder_problem(DataConfig(name="folder", folder=str(good.parent))) is None
    assert folder_problem(DataConfig(name="digits", folder="/proc")) is None  # not read unless name is folder


def test_one_class_or_no_test_images_block_scored_jobs():
    [one] = check_job("scratch", _cfg(), DataFacts(("cats",), (5,), 3))
    assert one.level == "block" and "one class only ('cats')" in one.message
    [none] = check_job("scratch", _cfg(), _facts((1, 1), test_images=0))
    assert none.level == "block" and "no test images" in none.message
    assert check_job("byol", _cfg(), DataFacts(("cats",), (5,), 3)) == []


def test_knn_with_fewer_labels_per_class_than_k_is_warned_about():
    facts = _facts((3, 30, 4))
    [warn] = check_job("byol", _cfg(k=20, label_fraction=0.05), facts)
    assert warn.level == "warn"
    assert "k = 20 nearest labelled images, but 'c0', 'c2' have as few as 3 labelled image(s)" in warn.message
    assert "keeping 5% of the labels" in warn.message and "eval.knn_k ≤ 3" in warn.message
    assert "vote with images of other classes" in warn.message
    assert check_job("knn", _cfg(k=20), facts)[0].message == warn.message  # kNN evaluation too
    assert check_job("byol", _cfg(k=3), facts) == []  # every class has k labels
    [every] = check_job("byol", _cfg(k=20), _facts((6, 5)))
    assert "but every class has 6 or fewer labelled images (after" in every.message
    assert check_job("scratch", _cfg(k=20), facts) == []  # supervised training uses no kNN


def test_a_small_test_set_is_warned_about_with_its_interval():
    assert noise_half_width(100) == pytest.approx(wilson_interval(50, 100).half_width)
    assert noise_half_width(100) == pytest.approx(0.0962, abs=1e-3)
    [warn] = check_job("scratch", _cfg(), _facts(test_images=100))
    assert warn == Guard("warn", "With 100 test images a 95% interval is about ±9.6 points: differences smaller "
                                 "than that cannot be told from noise. Use more test images, or compare several "
                                 "seeds on the Compare page.")
    assert check_job("scratch", _cfg(), _facts(test_images=1000)) == []  # ±3.1 points
    assert [g.level for g in check_job("byol", _cfg(), _facts((3, 3), test_images=100))] == ["warn", "warn"]
    assert check_job("byol", _cfg(), DataFacts((), (), 100)) == []  # nothing is scored without labels


def test_data_facts_count_labels_after_the_label_share_and_the_validation_split():
    cfg = DataConfig(name="digits", label_fraction=0.05, val_fraction=0.1)
    splits = load_data(cfg)
    facts = data_facts(splits)
    assert facts.num_classes == 10 and facts.test_images == len(splits.test)
    assert sum(facts.labelled_per_class) == len(splits.labelled_train)
    assert all(5 <= n <= 8 for n in facts.labelled_per_class), facts.labelled_per_class  # ~5% of ~130 per class


def test_chance_note_says_when_an_accuracy_cannot_be_told_from_guessing():
    note = chance_note(0.5, 32, 2)
    assert note == "50.0% on 32 test images (95% CI 34–66%) cannot be told from chance (50%)"
    assert chance_note(0.15, 40, 10) == "15.0% on 40 test images (95% CI 7–29%) cannot be told from chance (10%)"
    assert "chance (33.3%)" in chance_note(0.4, 30, 3)
    assert chance_note(0.9, 359, 10) is None  # far above chance
    assert chance_note(0.75, 400, 2) is None
    assert chance_note(None, 32, 2) is None and chance_note(0.5, 0, 2) is None and chance_note(0.5, 32, 1) is None


def test_the_train_page_blocks_supervised_training_on_an_unlabelled_folder(runs_dir, tmp_path):
    folder = _flat_folder(tmp_path / "flat")
    at = _page(_app(), "views/train.py")
    # as the Data page sets it
    at.session_state["data_choice"] = DataChoice().with_data(DataConfig(name="folder", folder=str(folder)))
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    assert not at.button(key="train.start").disabled  # BYOL needs no labels
    at.radio(key="train.kind").set_value("scratch").run()
    assert not at.exception
    assert _errors(at) == [NO_LABELS]
    assert at.button(key="train.start").disabled

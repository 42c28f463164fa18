"""The dashboard, driven headless with Streamlit's AppTest (no browser): pages, controls, a real tiny job."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from byol_core.config import AugmentConfig
from byol_core.lab.choices import DataChoice
from byol_core.lab.run_store import RunStore
from byol_core.presets import byol_paper_augment, get_preset
from tests.app_helpers import (
    PAGES,
    _app,
    _errors,
    _page,
    _tiny_cfg,
    _wait_for,
    _wait_for_end,
    compare_runs,
    table_column,
)


def test_every_page_renders_without_errors(runs_dir):
    at = _app()
    assert at.title[0].value == "Data & augmentations"  # the default page
    titles = {}
    for page in PAGES:
        _page(at, page)
        assert not _errors(at), _errors(at)
        titles[page] = at.title[0].value
    assert titles == {"views/data.py": "Data & augmentations", "views/train.py": "Train",
                      "views/compare.py": "Compare", "views/embeddings.py": "Embeddings"}


def test_augmentation_controls_are_generated_from_the_schema(runs_dir):
    at = _page(_app(), "views/data.py")
    for view in ("view1", "view2"):
        at.session_state["data.view"] = f"View {view[-1]}"  # only the open view's controls are drawn
        at.run()
        other = "view2" if view == "view1" else "view1"
        assert not [w for w in at.slider if w.key.startswith(f"aug.{other}.")]
        for op in ("crop", "flip", "jitter", "grayscale", "blur", "solarize"):
            assert at.toggle(key=f"aug.{view}.{op}.on") is not None
        for key in ("crop_scale", "crop_ratio", "flip_p", "jitter_p", "brightness", "contrast", "saturation", "hue",
                    "grayscale_p", "blur_p", "blur_sigma", "solarize_p", "solarize_threshold"):
            slider = at.slider(key=f"aug.{view}.{key}")
            assert slider.help, key  # the schema's help text
    assert at.slider(key="aug.view2.solarize_p").value == pytest.approx(0.2)
    at.session_state["data.view"] = "View 1"
    at.run()
    assert at.slider(key="aug.view1.crop_scale").value == pytest.approx((0.4, 1.0))  # digits-quick's views
    assert at.slider(key="aug.view1.flip_p").value == 0.0  # a mirrored digit is no digit
    assert at.toggle(key="aug.view1.solarize.on").value is False  # view 1 is never solarized
    assert at.number_input(key="aug.image_size").value == 16  # digits' default view size
    assert at.number_input(key="aug.seed").value == 0
    assert at.button(key="aug.new_draw") is not None and at.button(key="aug.reset") is not None
    assert len(at.get("image")) == 1  # one grid: rows of original, view 1, view 2


def test_changing_a_control_changes_the_previewed_config(runs_dir):
    at = _page(_app(), "views/data.py")
    assert not at.code  # the config and the snippet are drawn only once their expander is open
    at.session_state["data.copy_open"] = True
    at.session_state["data.view"] = "View 2"
    at.run()
    at.slider(key="aug.view2.solarize_p").set_value(0.7).run()
    assert not at.exception
    cfg: AugmentConfig = at.session_state["data_choice"].augment
    assert cfg.view2.solarize_p == pytest.approx(0.7)
    shown = json.loads(at.code[0].value)
    assert shown["view2"]["solarize_p"] == pytest.approx(0.7)

    # View 1 opened: view 2's controls are no longer drawn, and its change stays in the choice and the config
    # shown; opened again, they start from it.
    at.session_state["data.view"] = "View 1"
    at.run()
    assert not [w for w in at.slider if w.key.startswith("aug.view2.")]
    assert at.session_state["data_choice"].augment.view2.solarize_p == pytest.approx(0.7)
    assert json.loads(at.code[0].value)["view2"]["solarize_p"] == pytest.approx(0.7)
    assert "view2.solarize_p" in " ".join(c.value for c in at.caption)  # still counted among the changes

    # Switching an op off sets its probability to 0; on again restores a usable probability.
    at.toggle(key="aug.view1.blur.on").set_value(False).run()
    assert at.session_state["data_choice"].augment.view1.blur_p == 0.0
    assert json.loads(at.code[0].value)["view1"]["blur_p"] == 0.0
    at.toggle(key="aug.view1.solarize.on").set_value(True).run()
    assert at.session_state["data_choice"].augment.view1.solarize_p > 0

    # The Python snippet rebuilds exactly the config shown.
    namespace: dict = {}
    exec(at.code[1].value, namespace)  # noqa: S102 - our own generated snippet
    assert namespace["cfg"] == at.session_state["data_choice"].augment

    # "New draw" moves the seed; the reset restores the paper's views at the current size.
    at.button(key="aug.new_draw").click().run()
    assert at.number_input(key="aug.seed").value == 1
    at.number_input(key="aug.image_size").set_value(24).run()
    at.button(key="aug.reset").click().run()
    assert at.session_state["data_choice"].augment == byol_paper_augment(24)
    at.session_state["data.view"] = "View 2"
    at.run()
    assert at.slider(key="aug.view2.solarize_p").value == pytest.approx(0.2)  # the reset reached the hidden view

    # The Train page trains on what the Data page chose.
    _page(at, "views/train.py")
    assert "24 px views" in " ".join(c.value for c in at.caption)


def test_view_captions_follow_the_toggles_and_the_view_size(runs_dir):
    at = _page(_app(), "views/data.py")

    def captions() -> str:
        return " | ".join(c.value for c in at.caption)

    assert "View 1 is always blurred and never solarized." in captions()  # digits-quick's views
    assert "At 16 px: sigma 0.10–2.00 px, kernel 13×13 px." in captions()
    assert "View 2 is" not in captions()  # its tab is closed: nothing of it is drawn
    at.session_state["data.view"] = "View 2"
    at.run()
    assert "View 2 is blurred 10% of the time and solarized 20% of the time." in captions()
    at.session_state["data.view"] = "View 1"
    at.run()

    at.toggle(key="aug.view1.solarize.on").set_value(True).run()
    assert "never solarized" not in captions()
    assert "View 1 is always blurred and solarized 50% of the time." in captions()
    at.toggle(key="aug.view1.blur.on").set_value(False).run()
    assert "View 1 is never blurred and solarized 50% of the time." in captions()

    at.session_state["data.view"] = "View 2"  # view 1 is no longer blurred: view 2's blur caption
    at.number_input(key="aug.image_size").set_value(160).run()
    assert "At 160 px: sigma 0.10–2.00 px, kernel 17×17 px." in captions()  # 10% of the side, made odd


def test_user_errors_are_shown_as_messages_not_tracebacks(runs_dir, tmp_path):
    at = _page(_app(), "views/data.py")
    at.selectbox(key="data.source").set_value("folder").run()
    at.text_input(key="data.folder").set_value(str(tmp_path / "no-such-folder")).run()
    assert not at.exception
    assert any("does not exist" in e for e in _errors(at)), _errors(at)
    assert at.session_state["data_choice"].data.name == "digits"  # still usable: the last good data set stays

    # A folder of images works, and its images are previewed.
    from PIL import Image

    folder = tmp_path / "pics"
    for cls in ("cats", "dogs"):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((20, 20, 3), 40 * i + (100 if cls == "dogs" else 0), np.uint8)).save(
                folder / cls / f"{i}.png")
    at.text_input(key="data.folder").set_value(str(folder)).run()
    assert not at.exception and not _errors(at), _errors(at)
    assert at.session_state["data_choice"].data.folder == str(folder)


def test_a_tiny_job_started_from_train_finishes_and_shows_up_everywhere(runs_dir):
    store = RunStore(runs_dir)
    at = _page(_app(), "views/train.py")
    assert at.radio(key="train.kind").value == "byol"
    assert at.selectbox(key="train.preset").value == "digits-quick"  # the front door's default
    at.selectbox(key="train.preset").set_value("tiny").run()
    at.number_input(key="train.epochs.byol.tiny.").set_value(1.0).run()
    at.button(key="train.start").click().run()
    assert not at.exception, at.exception
    run = _wait_for_end(store)
    status = run.read_status()
    assert status["state"] == "finished", status.get("error")
    cfg, kind, _ = run.read_config()
    assert kind == "byol" and cfg.data.name == "digits" and cfg.byol.optim.epochs == 1.0
    # The preset's own views (the person changed none on the Data page), at the data set's view size.
    assert cfg.augment == dataclasses.replace(get_preset("tiny").augment, image_size=16)
    assert len(store.list()) == 1  # one click, one run

    at.run()
    assert not at.exception
    assert any("Finished: kNN accuracy" in s.value for s in at.success)
    assert any(run.id in str(m.value) for m in at.markdown)

    _page(at, "views/compare.py")
    assert not _errors(at)
    table = compare_runs(at)
    assert run.id in list(table["run_id"])
    assert "BYOL kNN" in list(table["method"])

    _page(at, "views/embeddings.py")
    assert not _errors(at), _errors(at)
    assert at.selectbox(key="emb.a").value == run.id
    assert at.selectbox(key="emb.b").value == "random-init"
    assert len(at.metric) >= 4  # kNN accuracy and silhouette beside each of the two plots


def test_a_running_job_blocks_a_duplicate_start_and_can_be_stopped_and_resumed(runs_dir):
    store = RunStore(runs_dir)
    at = _page(_app(), "views/train.py")
    at.selectbox(key="train.preset").set_value("tiny").run()
    at.number_input(key="train.epochs.byol.tiny.").set_value(400.0).run()
    at.button(key="train.start").click().run()
    _wait_for(store, lambda s: s.get("state") == "running" and s.get("step", 0) > 0, timeout=600)
    at.run()
    assert at.button(key="train.start").disabled  # the identical job is active
    run = store.list()[0]
    at.button(key=f"stop.{run.id}").click().run()
    _wait_for(store, lambda s: s.get("state") == "stopped", timeout=600)
    from dashboard import state

    state.get_manager().wait(run.id, timeout=600)
    at.run()
    assert not at.exception
    assert not at.button(key="train.start").disabled
    at.button(key=f"resume.{run.id}").click().run()
    assert not at.exception
    _wait_for(store, lambda s: s.get("state") == "running", timeout=600)
    assert len(store.list()) == 1  # resumed in place, no new run


def test_past_runs_survive_a_restart_and_an_interrupted_run_can_be_resumed(runs_dir):
    # A run left 'running' by a process that no longer exists reads as 'interrupted'.
    store = RunStore(runs_dir)
    run = store.create("byol", _tiny_cfg(), {"mode": "byol", "from_run": None})
    run.set_status("running", started=time.time())
    status = json.loads(run.status_path.read_text())
    status["pid"] = 2**22 + 4321  # no such process
    run.status_path.write_text(json.dumps(status))
    assert run.read_status()["state"] == "interrupted"

    at = _page(_app(), "views/train.py")
    assert run.id in table_column(at, "run")
    assert at.selectbox(key="train.resume_pick").value == run.id
    at.button(key="train.resume").click().run()
    assert not at.exception
    done = _wait_for_end(store)
    assert done.id == run.id and done.read_status()["state"] == "finished", done.read_status().get("error")


def test_compare_runs_random_init_knn_when_missing_and_exports_csv(runs_dir):
    from byol_core.lab.plans import plan
    from byol_core.lab.summary import list_summaries
    from dashboard import state, tables

    at = _page(_app(), "views/compare.py")
    assert any("No finished runs yet" in i.value for i in at.info)

    # A finished BYOL run (trained directly through the manager, as the Train page does).
    manager = state.get_manager()
    job = manager.submit(plan("byol", _tiny_cfg()))
    manager.wait(job.id, timeout=600)
    assert job.state == "finished", job.error

    _page(at, "views/compare.py")
    at.button(key="compare.random_knn").click().run()
    assert not at.exception
    store = RunStore(runs_dir)
    _wait_for(store, lambda s: s.get("kind") == "evaluate" and s.get("state") == "finished")
    table = compare_runs(at)
    assert set(table["method"]) == {"BYOL kNN", "random-init kNN"}
    evaluated = next(r for r in store.list() if r.read_config()[1] == "evaluate")
    assert evaluated.read_config()[0].model == job.run.read_config()[0].model  # same network as the BYOL run

    rows = tables.compare_rows(list_summaries(store))
    lines = tables.rows_to_csv(rows).splitlines()
    assert lines[0].split(",") == list(tables.CSV_COLUMNS)
    assert len(lines) == 3 and all(0.0 <= float(line.split(",")[1]) <= 1.0 for line in lines[1:])


def test_switching_data_sets_updates_the_view_size_and_explains_missing_ones(runs_dir):
    from byol_core.data.builtin import DEBIAN_FASHION_MNIST_DIR

    at = _page(_app(), "views/data.py")
    if Path(DEBIAN_FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz").is_file():
        at.selectbox(key="data.source").set_value("fashion-mnist").run()
        assert not at.exception and not _errors(at), _errors(at)
        assert at.session_state["data_choice"].data.name == "fashion-mnist"
        assert at.session_state["data_choice"].augment.image_size == 28
        assert at.number_input(key="aug.image_size").value == 28

    if not Path("data", "cifar-10-batches-py").exists():  # data/ is the test's own folder
        at.selectbox(key="data.source").set_value("cifar10").run()
        assert not at.exception
        assert any("cifar10" in e for e in _errors(at)), _errors(at)
        assert any("not on this machine" in w.value for w in at.warning)
        assert at.button(key="data.download") is not None
        assert at.session_state["data_choice"].data.name != "cifar10"  # the last good data set stays in use


def test_streamlit_config_serves_locally_and_keeps_the_server_light():
    import tomllib

    config = tomllib.loads(Path(".streamlit/config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1" and config["server"]["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False
    # Streamlit's default full gc.collect() after every rerun cost ~0.6 s of CPU per Train-page
    # refresh in a process holding torch and plotly: a quarter of a core taken from training.
    assert config["runner"]["postScriptGC"] is False
    assert config["server"]["fileWatcherType"] == "none"


def test_a_past_run_shows_its_config_changes_download_and_where_it_fails(runs_dir):
    from byol_core.lab import runner
    from byol_core.lab.plans import plan

    store = RunStore(runs_dir)
    run = runner.start(plan("byol", _tiny_cfg()), store)
    at = _page(_app(), "views/train.py")
    # Before Start: the plan's changes to the preset are listed with their reasons.
    assert any("What this job changes from the digits-quick preset" in e.label for e in at.expander)
    at.radio(key="train.kind").set_value("scratch").run()  # few labels: the epochs become min_steps, and why
    assert any("steps because min" in c.value for c in at.caption), \
        [c.value for c in at.caption]  # a note under the changes, not counted as one
    at.selectbox(key="train.show_run").set_value(run.id).run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any("weights_only=True" in c.value and "build_encoder" in c.value for c in at.code)  # small-cnn snippet
    at.toggle(key=f"train.errors.{run.id}").set_value(True).run()
    assert not at.exception and not _errors(at), _errors(at)
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any(f.get("layout", {}).get("title", {}).get("text") == "Confusion matrix" for f in figures)
    assert any("right," in c.value for c in at.caption)


def test_the_train_pages_preset_follows_the_data_set(runs_dir):
    from byol_core.config import DataConfig

    at = _page(_app(), "views/train.py")
    assert at.selectbox(key="train.preset").value == "digits-quick"
    for name, preset in (("fashion-mnist", "cpu-quick"), ("cifar10", "cifar10-cpu"), ("digits", "digits-quick")):
        at.session_state["data_choice"] = DataChoice().with_data(DataConfig(name=name))  # as the Data page sets it
        at.run()
        assert not at.exception, at.exception
        assert at.selectbox(key="train.preset").value == preset, name
    at.selectbox(key="train.preset").set_value("tiny").run()  # a choice for the same data set is kept
    at.run()
    assert at.selectbox(key="train.preset").value == "tiny"


def test_study_table_reads_as_mean_plus_minus_half_width():
    from dashboard.study_panel import table_row

    row = {"method": "BYOL linear probe", "label_fraction": 0.0111112, "n": 3, "mean": 0.8472,
           "std": 0.0026, "ci95": [0.8406, 0.8537], "values": [0.8502, 0.8454, 0.8459]}
    shown = table_row(row)
    assert shown["labels"] == "1.11%" and shown["n"] == 3
    assert shown["accuracy (95% CI)"] == "84.7% ± 0.7"
    assert shown["interval"] == "84.1 to 85.4%"
    assert shown["std (points)"] == 0.3
    assert shown["covers"].startswith("over seeds only")  # saved without per-image scores
    wide = table_row({"method": "BYOL kNN", "augmentation": "full", "n": 2, "mean": 0.4258, "std": 0.105,
                      "ci95": [-0.517, 1.369]})
    # Shown clipped to what an accuracy can be (the raw ends stay in the JSON's ci95), never as "± 94.3".
    assert wide["interval"] == "0.0 to 100.0%" and "labels" not in wide
    assert wide["accuracy (95% CI)"] == "42.6% (0.0 to 100.0)"
    assert table_row({"method": "m", "n": 1, "mean": 0.5, "ci95": None})["accuracy (95% CI)"] == \
        "50.0% (n=1, no interval)"


# --------------------------------------------------------------------------- Compare: one group, a declared pair
def _compare_texts(at) -> list[str]:
    """The page's words, with the Markdown escapes of text from run folders (names, configs) taken out."""
    shown = ([m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
             + [s.value for s in at.success] + [m.label for m in at.metric] + [e.label for e in at.expander])
    return [re.sub(r"\\(.)", r"\1", t) for t in shown]


def test_compare_shows_one_group_and_its_declared_comparison_and_keeps_the_group_picked(runs_dir):
    from byol_core.lab.comparison import comparison_key
    from tests.lab.test_comparison import method_set, tiny

    store = RunStore(runs_dir)
    quick = get_preset("digits-quick")
    first = method_set(store, quick, {"byol": 0.95, "linear": 0.8, "scratch": 0.7}, seeds=(0, 1))
    at = _page(_app(), "views/compare.py")
    assert not _errors(at), _errors(at)
    assert at.selectbox(key="compare.group").value == comparison_key(quick)
    texts = _compare_texts(at)
    # The declared pair is the headline though BYOL kNN scores higher; no card picks a best method.
    assert any("Declared comparison: BYOL linear probe vs supervised from scratch" in t for t in texts), texts
    assert any("never chosen by test accuracy" in t for t in texts)
    assert not any("Best pretrained" in t for t in texts)
    assert [m.label for m in at.metric] == ["BYOL linear probe", "BYOL kNN", "Supervised from scratch"]
    assert at.metric[0].value.startswith("80.0%")
    assert any(t.startswith("2 seeds: too few to read this interval") for t in texts)
    assert any(t.startswith("Labelled subset: drawn per seed") for t in texts)
    assert set(compare_runs(at)["run_id"]) == {r.id for r in first}

    # A tiny sweep's runs arrive (the repro): a bigger group with other settings at the same label share.
    small = tiny(**{"data.label_fraction": 0.05})
    second = method_set(store, small, {"byol": 0.4, "linear": 0.3, "finetune": 0.35, "scratch": 0.2,
                                       "random": 0.25}, seeds=(0, 1, 2))
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    assert at.selectbox(key="compare.group").value == comparison_key(quick)  # the group shown stays
    assert set(compare_runs(at)["run_id"]) == {r.id for r in first}  # no run of the other group
    assert at.metric[0].value.startswith("80.0%") and len(at.metric) == 3
    texts = _compare_texts(at)
    assert any("vs digits · 5% labels · tiny (15 runs): " in t and "data.max_test_images none → 128" in t
               for t in texts), texts
    _page(at, "views/train.py")
    _page(at, "views/compare.py")
    assert at.selectbox(key="compare.group").value == comparison_key(quick)  # and after leaving the page

    # Picking the other group shows its runs alone; a new session opens on the group with the most runs.
    at.selectbox(key="compare.group").set_value(comparison_key(small)).run()
    assert set(compare_runs(at)["run_id"]) == {r.id for r in second}
    assert _page(_app(), "views/compare.py").selectbox(key="compare.group").value == comparison_key(small)

    # Another pair, declared before its numbers are shown; the rest judged with Holm.
    at.selectbox(key="compare.declare_a").set_value("BYOL kNN")
    at.selectbox(key="compare.declare_b").set_value("random-init kNN")
    at.button(key="compare.declare").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    texts = _compare_texts(at)
    assert any("Declared comparison: BYOL kNN vs random-init kNN** (declared by you" in t for t in texts), texts
    assert any("Holm's correction over 2 comparisons" in t for t in texts), texts
    assert at.selectbox(key="compare.group").value == comparison_key(small)


def test_the_accuracy_bar_runs_from_zero_in_method_order_with_error_bars_inside_0_to_100():
    from byol_core import stats
    from byol_core.lab.comparison import MethodResult
    from dashboard import charts

    wide = stats.summarize([0.99, 0.5])  # two seeds far apart: the raw interval reaches past 100% and below 0
    assert wide.low < 0.0 and wide.high > 1.0
    perfect = stats.accuracy_summary(np.ones(50, dtype=bool))
    fig = charts.accuracy_bar([MethodResult("supervised from scratch", (0, 1), (0.99, 0.5), ("a", "b"), wide),
                               MethodResult("BYOL linear probe", (0,), (1.0,), ("c",), perfect)])
    bar = fig.data[0]
    assert list(bar.x) == ["BYOL linear probe", "supervised from scratch"]  # METHOD_ORDER, not by accuracy
    assert tuple(fig.layout.yaxis.range) == (0.0, 1.0)
    tops = [m + e for m, e in zip(bar.y, bar.error_y.array, strict=True)]
    bottoms = [m - e for m, e in zip(bar.y, bar.error_y.arrayminus, strict=True)]
    assert max(tops) == pytest.approx(1.0) and min(bottoms) == pytest.approx(0.0)
    assert bar.customdata[1][1].startswith(f"raw 95% CI: {100 * wide.low:.1f} to {100 * wide.high:.1f}")
    assert list(fig.data[1].y) == [1.0, 0.99, 0.5]  # each seed's run

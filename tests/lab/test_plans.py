"""Plans: from "what to run" to the exact job, every change to the starting config named with its reason."""

import pytest

from byol_core.config import MAX_SEED, ConfigError, DataConfig, with_overrides
from byol_core.lab.plans import Change, config_diff, plan, stage_options_of
from byol_core.lab.stages import stage_names
from byol_core.presets import get_preset


def test_plan_merges_the_data_page_choice_and_explains_each_change():
    preset = get_preset("digits-quick")
    spec = plan("scratch", preset, data=DataConfig(name="fashion-mnist", max_train_images=500), num_images=70,
                overrides={"supervised.optim.lr": 3e-4})
    changes = {c.field: c for c in spec.changes}
    assert changes["data.name"].after == "fashion-mnist" and "Data page" in changes["data.name"].reason
    assert changes["supervised.optim.lr"].before == 1e-3 and changes["supervised.optim.lr"].reason == "set for this job"
    # The preset keeps its experiment design (caps, label fraction); the plan says so instead of hiding it.
    assert spec.config.data.max_train_images is None and spec.config.data.label_fraction == 0.05
    assert any("max_train_images = none from the preset (the Data page had 500)" in n for n in spec.notes)
    assert any("10 epochs → 300 steps because min_steps = 300 with 70 training images" in n for n in spec.notes)


def test_plan_validates_sources_and_the_whole_config_after_every_override(tmp_path):
    with pytest.raises(ConfigError, match="needs a pretraining run"):
        plan("finetune", get_preset("tiny"))
    with pytest.raises(ConfigError, match="does not start from another run"):
        plan("scratch", get_preset("tiny"), source_run="some-run")
    # A rule that ties two fields together holds whatever order they are set in.
    for order in (("data.name", "data.folder"), ("data.folder", "data.name")):
        values = {"data.name": "folder", "data.folder": str(tmp_path)}
        cfg = with_overrides(get_preset("tiny"), {k: values[k] for k in order})
        assert cfg.data.name == "folder" and cfg.data.folder == str(tmp_path)
    with pytest.raises(ConfigError, match=r"^--set byol.optim.lr=-1: .*allowed range"):
        with_overrides(get_preset("tiny"), {"data.name": "digits", "byol.optim.lr": "-1"})


def test_identical_specs_share_one_key_and_a_changed_field_does_not():
    base = get_preset("tiny")
    assert plan("byol", base).key == plan("byol", base).key
    assert plan("byol", base).key != plan("byol", base, overrides={"seed": 1}).key
    assert plan("byol", base).key != plan("scratch", base).key


def test_plan_refuses_an_unknown_stage_and_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown stage 'dance'; choose one of") as refused:
        plan("dance", get_preset("tiny"))
    assert all(name in str(refused.value) for name in stage_names())
    assert plan("evaluate", get_preset("tiny")).stage == "knn"  # an older name still plans its stage


def test_plan_refuses_options_a_stage_does_not_take():
    with pytest.raises(ConfigError, match="takes no options; drop seeds"):
        plan("byol", get_preset("tiny"), options={"seeds": 3})
    assert plan("byol", get_preset("tiny")).stage_options == {}


def test_config_diff_lists_exactly_the_changed_leaves_with_one_reason():
    base = get_preset("tiny")
    after = with_overrides(base, {"seed": 4, "augment.view1.blur_p": 0.5, "byol.optim.lr": base.byol.optim.lr})
    # In the config's field order; the unchanged learning rate (set to the value it had) is left out.
    assert config_diff(base, after, "why") == [Change("seed", base.seed, 4, "why"),
                                               Change("augment.view1.blur_p", base.augment.view1.blur_p, 0.5, "why")]
    assert config_diff(base, base, "why") == []  # a field set to the value it had is no change
    assert str(Change("seed", 0, 4, "why")) == "seed: 0 → 4 (why)"
    assert Change("byol.optim.lr", 0.003, None, "set").markdown() == "`byol.optim.lr`: 0.003 → **none** (set)"
    typed = Change("data.folder", None, "/x/![i](http://e.com/i.png)", "set").markdown()  # a folder a person typed
    assert typed == "`data.folder`: none → **/x/\\!\\[i\\]\\(http\\://e\\.com/i\\.png\\)** (set)"


def test_a_job_spec_stores_its_stage_source_and_own_options_and_reads_them_back():
    spec = plan("linear", get_preset("tiny"), source_run="a-run", name="probe", label="My probe")
    assert (spec.stage, spec.source_run, spec.label, spec.config.name) == ("linear", "a-run", "My probe", "probe")
    assert [str(c) for c in spec.changes] == ["name: tiny → probe (the job's name)"]
    assert spec.options() == {"mode": "linear", "from_run": "a-run"}
    assert stage_options_of({**spec.options(), "seeds": 3}) == {"seeds": 3}
    assert plan("linear", get_preset("tiny"), source_run="a-run").label == "Linear probe on a frozen pretrained encoder"


def test_a_study_whose_seeds_would_run_past_the_largest_seed_is_refused():
    cfg = with_overrides(get_preset("tiny"), {"seed": MAX_SEED - 1})
    for study in ("sweep", "ablation"):
        options = {"seeds": 3} | ({"label_fractions": [1.0]} if study == "sweep" else {})
        with pytest.raises(ConfigError, match=rf"seed = {MAX_SEED - 1} with 3 seeds runs past the largest seed"):
            plan(study, cfg, options=options)
        assert plan(study, cfg, options={**options, "seeds": 2}).stage_options["seeds"] == 2  # ends at MAX_SEED


def test_the_change_list_is_the_plans_diff_one_line_per_field_with_the_last_reason():
    # The repro: Fashion-MNIST on the Data page, the tiny preset, test images 0 (none) on the form.
    base = get_preset("tiny")
    spec = plan("byol", base, data=DataConfig(name="fashion-mnist"), name="mine",
                overrides={"data.max_test_images": None, "name": "mine-too"})
    fields = [c.field for c in spec.changes]
    assert len(fields) == len(set(fields))  # one line per field
    assert set(fields) == {c.field for c in config_diff(base, spec.config, "")}
    by_field = {c.field: c for c in spec.changes}
    assert by_field["data.max_test_images"].after is None and by_field["data.max_test_images"].reason == "set for this job"
    assert by_field["name"].after == "mine-too" and by_field["data.name"].reason == "the data set chosen on the Data page"
    assert not any("max_test_images" in note for note in spec.notes)  # no "= 128 from the preset" beside it
    kept = plan("byol", base, data=DataConfig(name="fashion-mnist"))
    assert any(note.startswith("data.max_test_images = 128 from the preset") for note in kept.notes)

import json

import pytest

from byol_core.config import (
    AugmentConfig,
    ConfigError,
    ExperimentConfig,
    ViewAugmentConfig,
    from_json,
    load_config,
    parse_set_args,
    save_config,
    to_json,
    with_overrides,
)
from byol_core.presets import PRESETS, byol_paper_augment, get_preset
from byol_core.schema import field_schema


def test_json_round_trip_of_every_preset(tmp_path):
    for name in PRESETS:
        cfg = get_preset(name)
        path = tmp_path / f"{name}.json"
        save_config(cfg, path)
        assert load_config(path) == cfg
        assert json.loads(path.read_text())["name"] == cfg.name


def test_out_of_range_value_names_field_value_and_range():
    with pytest.raises(ConfigError, match=r"flip_p = 1.5 is out of range; allowed range is \[0.0, 1.0\]"):
        ViewAugmentConfig(flip_p=1.5)


def test_wrong_choice_lists_the_choices():
    with pytest.raises(ConfigError, match="choose one of"):
        AugmentConfig(backend="opencv")


def test_min_above_max_is_rejected():
    with pytest.raises(ConfigError, match="crop_scale_min = 0.9 is larger than crop_scale_max"):
        ViewAugmentConfig(crop_scale_min=0.9, crop_scale_max=0.5)


def test_overrides_parse_and_validate():
    cfg = with_overrides(ExperimentConfig(), parse_set_args(["byol.optim.lr=3e-4", "augment.view2.solarize_p=0.5",
                                                             "data.max_train_images=100", "runtime.compile=true"]))
    assert cfg.byol.optim.lr == 3e-4
    assert cfg.augment.view2.solarize_p == 0.5
    assert cfg.data.max_train_images == 100
    assert cfg.runtime.compile is True
    with pytest.raises(ConfigError, match="--set byol.optim.lr=-1"):
        with_overrides(cfg, {"byol.optim.lr": "-1"})
    with pytest.raises(ConfigError, match="unknown config key 'byol.optim.learning_rate'"):
        with_overrides(cfg, {"byol.optim.learning_rate": "1"})
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_args(["byol.optim.lr"])
    with pytest.raises(ConfigError, match="must be a whole number"):
        with_overrides(cfg, {"data.max_train_images": "lots"})


def test_unknown_json_field_is_named():
    with pytest.raises(ConfigError, match="has no field 'colour'"):
        from_json(json.dumps({"augment": {"colour": 1}}))
    with pytest.raises(ConfigError, match="not valid JSON"):
        from_json("{")


def test_folder_data_needs_a_path():
    with pytest.raises(ConfigError, match="data.folder is empty"):
        with_overrides(ExperimentConfig(), {"data.name": "folder"})


def test_paper_augmentation_preset_is_asymmetric():
    aug = byol_paper_augment(96)
    assert (aug.view1.blur_p, aug.view2.blur_p) == (1.0, 0.1)
    assert (aug.view1.solarize_p, aug.view2.solarize_p) == (0.0, 0.2)
    for view in (aug.view1, aug.view2):
        assert (view.crop_scale_min, view.flip_p, view.jitter_p, view.grayscale_p) == (0.08, 0.5, 0.8, 0.2)
        assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.4, 0.4, 0.2, 0.1)


def test_seed_preset_matches_the_write_up():
    cfg = get_preset("seed-stl10")
    assert (cfg.data.name, cfg.model.backbone, cfg.augment.image_size) == ("stl10", "resnet18", 96)
    assert (cfg.byol.optim.optimizer, cfg.byol.optim.lr, cfg.byol.optim.epochs) == ("adam", 1e-4, 50)
    assert cfg.supervised.optim.epochs == 25


def test_schema_exposes_ranges_for_ui():
    rows = {r["name"]: r for r in field_schema(ViewAugmentConfig)}
    assert rows["flip_p"]["min"] == 0.0 and rows["flip_p"]["max"] == 1.0 and rows["flip_p"]["op"] == "flip"
    assert rows["blur_p"]["default"] == 1.0
    assert "help" in rows["hue"]


def test_config_text_is_stable():
    assert to_json(ExperimentConfig()) == to_json(from_json(to_json(ExperimentConfig())))


def test_seeds_stay_within_what_torch_and_numpy_accept():
    import numpy as np
    import torch

    from byol_core.config import MAX_SEED, DataConfig

    top = ExperimentConfig(seed=MAX_SEED, data=DataConfig(split_seed=MAX_SEED))
    torch.manual_seed(top.seed)
    np.random.seed(top.seed)  # the strictest: numpy's legacy seeding takes 0 .. 2**32 - 1
    np.random.default_rng([top.data.split_seed, 1])
    for cls, field in ((ExperimentConfig, "seed"), (DataConfig, "split_seed")):
        with pytest.raises(ConfigError, match=rf"{field} = 18446744073709551616 is out of range"):
            cls(**{field: 2**64})


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_devices_the_code_supports_are_accepted(device):
    from byol_core.config import RuntimeConfig

    assert RuntimeConfig(device=device).device == device


@pytest.mark.parametrize("device", ["meta", "xla", "cuda:", "cuda:-1", "cuda:x", "CPU", "", "cpu:0 "])
def test_other_devices_are_refused_naming_the_field(device):
    from byol_core.config import RuntimeConfig

    with pytest.raises(ConfigError, match=r"RuntimeConfig\.device = .* is not a device"):
        RuntimeConfig(device=device)


def test_thread_counts_are_capped():
    from byol_core.config import MAX_THREADS, RuntimeConfig

    assert RuntimeConfig(num_threads=MAX_THREADS).num_threads == MAX_THREADS
    with pytest.raises(ConfigError, match=r"num_threads = 100000 is out of range; allowed range is \[1, 1024\]"):
        RuntimeConfig(num_threads=100_000)


def test_config_files_too_large_or_too_deep_are_refused_before_parsing(tmp_path, monkeypatch):
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(100 * 2**20)
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("a too-large file was parsed"))
    with pytest.raises(ConfigError, match=r"big.json.* is too large \(100.0 MB; at most 1 MB is read\)"):
        load_config(big)
    monkeypatch.undo()
    deep = tmp_path / "deep.json"
    for text in ("[" * 100_000 + "]" * 100_000, '{"name": ' + '{"a": ' * 50 + "1" + "}" * 51):
        deep.write_text(text)
        with pytest.raises(ConfigError, match=r"nested more than 16 levels deep"):
            load_config(deep)
        with pytest.raises(ConfigError, match=r"nested more than 16 levels deep"):
            from_json(text)
    with pytest.raises(ConfigError, match=r"--set name='\[\[\[.*nested more than 16 levels deep"):
        with_overrides(ExperimentConfig(), {"name": "[" * 100_000 + "]" * 100_000})
    # Brackets inside strings are text, not nesting.
    assert from_json(json.dumps({"name": "[" * 100})).name == "[" * 100
    fifo = tmp_path / "fifo.json"
    import os

    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(fifo)

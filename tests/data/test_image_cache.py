"""The disk cache of an image folder: written once, read back exactly, resumed, kept up to date, guarded."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from byol_core.config import DataConfig, ExperimentConfig, from_json, to_dict
from byol_core.data import DataError, clear_cache, load_data
from byol_core.data import image_cache as cache_module
from byol_core.data.disk_images import DiskImages, is_disk_backed
from byol_core.data.folder import _decode, _decode_or_reason, _list_folder, folder_cache_plan
from byol_core.data.image_cache import ImageCache

SIZE = 12


def _folder(root: Path, per_class: int = 12, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    """Class subfolders of small JPEGs and PNGs of varied sizes and random content."""
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (20 + 3 * i, 30 + 2 * i, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i:03d}.{'jpg' if i % 2 else 'png'}")
    return root


def _files(folder: Path):
    return _list_folder(folder, None).files


def _cache(tmp_path: Path, folder: Path) -> ImageCache:
    return ImageCache.for_folder(folder, SIZE, tmp_path / "data")


def _direct(files) -> np.ndarray:
    return np.stack([_decode(Path(f.path), SIZE) for f in files])


@pytest.mark.parametrize("workers", [1, 2])
def test_the_cache_reads_back_exactly_what_decoding_gives(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(cache_module, "POOL_MIN", 0)  # two workers: the process pool decodes even this few
    folder = _folder(tmp_path / "imgs")
    files = _files(folder)
    seen = []
    cached = _cache(tmp_path, folder).update(files, _decode_or_reason, lambda done, total: seen.append((done, total)),
                                             workers=workers)
    assert isinstance(cached.images, DiskImages) and is_disk_backed(cached.images)
    assert cached.images.shape == (24, 3, SIZE, SIZE) and cached.images.dtype == torch.uint8
    assert np.array_equal(cached.images.materialize().numpy(), _direct(files))
    assert cached.labels.tolist() == [f.label for f in files] and cached.skipped == []
    assert seen[-1] == (24, 24)  # progress ends at all of them
    # Any index form reads the same rows as the decoded array, in the asked order.
    direct = torch.from_numpy(_direct(files))
    index = torch.tensor([5, 0, 23, 5, 7])
    assert torch.equal(cached.images[index], direct[index])
    assert torch.equal(cached.images[3:9], direct[3:9]) and torch.equal(cached.images[-1], direct[-1])
    assert torch.equal(cached.images[:, 1], direct[:, 1])
    assert torch.equal(cached.images.take(index)[1:3], direct[index][1:3])
    # The file is a plain C-ordered uint8 array: np.memmap reads it with the shape the index gives.
    mapped = np.memmap(cached.images.path, np.uint8, "r", shape=(24, 3, SIZE, SIZE))
    assert np.array_equal(mapped[cached.images.rows], _direct(files))
    # Pickled (a spawned worker, Streamlit's cache), it opens the file again and reads the same.
    assert torch.equal(pickle.loads(pickle.dumps(cached.images))[index], direct[index])


def test_a_stopped_first_pass_resumes_where_it_stopped(tmp_path):
    folder = _folder(tmp_path / "imgs")
    files = _files(folder)
    cache = _cache(tmp_path, folder)
    partial = cache.update(files, _decode_or_reason, limit=10)  # as a pass killed after 10 files leaves it
    assert len(partial.images) == 10 and cache.plan(files).to_decode == 14
    seen = []
    done = cache.update(files, _decode_or_reason, lambda d, t: seen.append((d, t)))
    assert seen[-1] == (14, 14)  # only the rest was decoded
    assert np.array_equal(done.images.materialize().numpy(), _direct(files))


def test_a_torn_log_line_only_costs_that_file_a_decode(tmp_path):
    folder = _folder(tmp_path / "imgs", per_class=3)
    files = _files(folder)
    cache = _cache(tmp_path, folder)
    cache.update(files, _decode_or_reason)
    log = next(cache.where.glob("rows-*.jsonl"))
    log.write_bytes(log.read_bytes()[:-20])  # a crash in the middle of the last line
    assert cache.plan(files).to_decode == 1
    assert np.array_equal(cache.update(files, _decode_or_reason).images.materialize().numpy(), _direct(files))


def test_added_changed_and_removed_files_are_noticed(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "COMPACT_MIN_LEFTOVERS", 0)
    folder = _folder(tmp_path / "imgs", per_class=6)
    cache = _cache(tmp_path, folder)
    cache.update(_files(folder), _decode_or_reason)

    Image.new("RGB", (40, 30), (250, 0, 0)).save(folder / "cat" / "new.png")  # added
    Image.new("RGB", (33, 33), (0, 250, 0)).save(folder / "dog" / "000.png")  # changed: new size and mtime
    (folder / "cat" / "001.jpg").unlink()  # removed
    files = _files(folder)
    assert cache.plan(files).to_decode == 2
    cached = cache.update(files, _decode_or_reason)
    assert len(cached.images) == 12 and np.array_equal(cached.images.materialize().numpy(), _direct(files))
    assert str(folder / "cat" / "001.jpg") not in {f.path for f in files}

    # Most files removed: the live rows are copied into a new, smaller generation.
    for f in files[2:]:
        Path(f.path).unlink()
    remaining = _files(folder)
    compacted = cache.update(remaining, _decode_or_reason)
    assert sorted(compacted.images.rows.tolist()) == [0, 1]
    assert os.path.getsize(compacted.images.path) == 2 * 3 * SIZE * SIZE
    assert [p.name for p in sorted(cache.where.glob("images-*.u8"))] == [Path(compacted.images.path).name]
    assert np.array_equal(compacted.images.materialize().numpy(), _direct(remaining))


def test_bad_files_are_listed_with_the_reason_and_not_decoded_again(tmp_path):
    folder = _folder(tmp_path / "imgs", per_class=4)
    (folder / "cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "stray.png").write_bytes(b"x")  # not in a class subfolder
    cfg = DataConfig(name="folder", folder=str(folder), root=str(tmp_path / "data"), folder_image_size=SIZE)
    splits = load_data(cfg)
    assert splits.skipped_files[0].startswith(f"{folder / 'stray.png'}: not inside a class subfolder")
    assert any(s.startswith(f"{folder / 'cat' / 'broken.jpg'}: ") for s in splits.skipped_files)
    assert len(splits.train) + len(splits.test) == 8
    assert folder_cache_plan(cfg).to_decode == 0  # the bad file's reason is cached too


def test_the_guard_rail_says_how_many_images_how_much_disk_and_how_long(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "imgs", per_class=5)
    cfg = DataConfig(name="folder", folder=str(folder), root=str(tmp_path / "data"), folder_image_size=SIZE)
    plan = folder_cache_plan(cfg)
    assert plan.problem() is None and plan.to_decode == 10 and "10 of 10 images to decode" in plan.describe()

    class _Full:
        free = 1000

    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda path: _Full())
    problem = folder_cache_plan(cfg).problem()
    assert "10 images" in problem and "1000 bytes are free" in problem and "first pass would take about" in problem
    assert "BYOL_CACHE_DIR" in problem and "data.folder_image_size" in problem
    clear_cache()
    with pytest.raises(DataError, match="the image cache needs .* free at"):
        load_data(cfg)
    assert not list(ImageCache.for_folder(folder, SIZE, tmp_path / "data").where.glob("images-*.u8"))


def test_the_cache_lives_where_byol_cache_dir_says(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOL_CACHE_DIR", str(tmp_path / "elsewhere"))
    folder = _folder(tmp_path / "imgs", per_class=2)
    cfg = DataConfig(name="folder", folder=str(folder), root=str(tmp_path / "data"), folder_image_size=SIZE)
    splits = load_data(cfg)
    assert Path(splits.train.images.path).parent.parent == tmp_path / "elsewhere"
    assert not (tmp_path / "data").exists()


def test_no_count_cap_by_default_and_old_configs_load_with_theirs():
    assert DataConfig().max_folder_images is None
    saved = to_dict(ExperimentConfig())  # a config.json written before: the old default of 20,000 in it
    saved["data"].update(name="folder", folder="/x", max_folder_images=20000)
    assert from_json(json.dumps(saved)).data.max_folder_images == 20000
    del saved["data"]["max_folder_images"]
    assert from_json(json.dumps(saved)).data.max_folder_images is None


def test_splits_of_a_cached_folder_stay_on_disk_with_sampled_statistics(tmp_path, monkeypatch):
    from byol_core.data import splits as splits_module

    monkeypatch.setattr(splits_module, "STATS_SAMPLE", 10)
    folder = _folder(tmp_path / "imgs", per_class=10)
    cfg = DataConfig(name="folder", folder=str(folder), root=str(tmp_path / "data"), folder_image_size=SIZE,
                     val_fraction=0.2, label_fraction=0.5)
    splits = load_data(cfg)
    for part in (splits.train, splits.val, splits.test, splits.labelled_train):
        assert is_disk_backed(part.images) and len(part.images) == len(part.labels) > 0
    rows = [set(p.images.rows.tolist()) for p in (splits.train, splits.val, splits.test)]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    assert set(splits.labelled_train.images.rows.tolist()) <= rows[0]
    everything = splits.train.images.materialize().double() / 255
    exact = everything.mean((0, 2, 3))
    assert np.allclose(splits.mean, exact.numpy(), atol=0.05)  # 10 of the images: close to all of them

"""The downloaded built-in sets go through a disk cache: decoded once, read back a batch at a time, written
again when their files change, refused with what to do when the disk is too small."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from byol_core.config import DataConfig
from byol_core.data import DataError, builtin_cache, clear_cache, load_data
from byol_core.data import builtin as data_sources
from byol_core.data.disk_images import DiskImages, is_disk_backed
from byol_core.data.splits import split_rng

from .test_data import _accept_all_files, _fashion_arrays, _idx_bytes, _write_stl10


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _write_fashion(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(_idx_bytes(array)))


def _cache_files(root: Path, pattern: str) -> list[Path]:
    return sorted((root / "cache").glob(f"builtin-*/{pattern}"))


def test_fashion_mnist_is_decoded_once_then_read_from_its_cache(tmp_path, monkeypatch):
    idx = tmp_path / "idx"
    idx.mkdir()
    arrays = _fashion_arrays()
    _write_fashion(idx, arrays)
    monkeypatch.setenv("BYOL_FASHION_MNIST_DIR", str(idx))
    cfg = DataConfig(name="fashion-mnist", root=str(tmp_path / "root"), download=False, val_fraction=0.0)
    first = load_data(cfg)
    assert [p.name for p in _cache_files(tmp_path / "root", "meta.json")] == ["meta.json"]
    assert is_disk_backed(first.train.images) and is_disk_backed(first.test.images)

    clear_cache()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache holds the same files")

    monkeypatch.setattr(data_sources, "_read_idx", no_decoding)
    again = load_data(cfg)
    assert torch.equal(again.train.images[torch.arange(len(again.train))],
                       torch.from_numpy(arrays["train-images-idx3-ubyte"])[:, None])
    assert torch.equal(again.test.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    assert (again.mean, again.std) == (first.mean, first.std)


def test_a_changed_source_file_writes_a_new_generation_and_removes_the_old(tmp_path, monkeypatch):
    idx = tmp_path / "idx"
    idx.mkdir()
    _write_fashion(idx, _fashion_arrays(seed=0))
    monkeypatch.setenv("BYOL_FASHION_MNIST_DIR", str(idx))
    cfg = DataConfig(name="fashion-mnist", root=str(tmp_path / "root"), download=False, val_fraction=0.0)
    old = load_data(cfg)
    old_images = _cache_files(tmp_path / "root", "images-*.u8")
    held = old.train.images  # a reader of the old generation, as a running job would be
    before = held[torch.arange(3)]

    changed = _fashion_arrays(seed=7)
    _write_fashion(idx, changed)
    stamp = os.stat(idx / "train-images-idx3-ubyte.gz").st_mtime_ns + 10**9
    os.utime(idx / "train-images-idx3-ubyte.gz", ns=(stamp, stamp))
    clear_cache()
    new = load_data(cfg)
    assert torch.equal(new.train.images[torch.arange(len(new.train))],
                       torch.from_numpy(changed["train-images-idx3-ubyte"])[:, None])
    now_images = _cache_files(tmp_path / "root", "images-*.u8")
    assert len(now_images) == 1 and now_images != old_images  # the old generation's file is gone
    assert torch.equal(held[torch.arange(3)], before)  # its open reader still reads what it read


def test_stl10_unlabelled_images_stay_on_disk_and_the_cap_draws_the_same_rows(tmp_path, monkeypatch):
    _accept_all_files(monkeypatch, "stl10")
    arrays = _write_stl10(tmp_path, n_unlabeled=7)
    monkeypatch.setattr(builtin_cache, "WRITE_CHUNK_BYTES", 2 * 3 * 96 * 96)  # two rows a write: copied in pieces
    full = load_data(DataConfig(name="stl10", root=str(tmp_path), download=False))
    assert isinstance(full.unlabeled.images, DiskImages)
    assert torch.equal(full.unlabeled.images[torch.arange(7)], torch.from_numpy(arrays["unlabeled"]))
    pretrain = full.pretrain_images()
    assert isinstance(pretrain, DiskImages) and pretrain.shape[0] == len(full.train) + 7  # joined, nothing read
    assert torch.equal(pretrain[torch.arange(len(full.train), len(pretrain))], torch.from_numpy(arrays["unlabeled"]))

    cfg = DataConfig(name="stl10", root=str(tmp_path), download=False, max_unlabeled_images=3)
    capped = load_data(cfg)
    # The same draw as when the unlabelled file was read straight into memory.
    chosen = np.sort(split_rng(cfg, 5).choice(7, 3, replace=False))
    assert torch.equal(capped.unlabeled.images[torch.arange(3)], torch.from_numpy(arrays["unlabeled"][chosen]))


def test_a_disk_too_small_for_the_cache_is_a_data_error_naming_what_to_do(tmp_path, monkeypatch):
    _accept_all_files(monkeypatch, "stl10")
    _write_stl10(tmp_path, n_unlabeled=4)
    total, used = 10**12, 10**12 - 2**20
    monkeypatch.setattr(builtin_cache.shutil, "disk_usage", 
                        lambda path: shutil._ntuple_diskusage(total, used, total - used))
    with pytest.raises(DataError) as info:
        load_data(DataConfig(name="stl10", root=str(tmp_path), download=False))
    message = str(info.value)
    assert "stl10" in message and "BYOL_CACHE_DIR" in message and "1.0 MB are free" in message
    assert not _cache_files(tmp_path, "meta.json")  # nothing half written

"""Tests of byol_core.data.loading: every source from tiny files in the real on-disk formats."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from byol_core.config import DATASETS, DataConfig
from byol_core.data import DataError, DataSplits, ImageSet, available_datasets, clear_cache, load_data
from byol_core.data import builtin as data_sources
from byol_core.data import splits as data_splits
from byol_core.data.disk_images import is_disk_backed


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _accept_all_files(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """torchvision md5-checks the real files; our tiny files only need to exist."""
    monkeypatch.setattr(f"torchvision.datasets.{module}.check_integrity",
                        lambda fpath, md5=None: os.path.isfile(fpath))


# --------------------------------------------------------------------------- digits
def test_digits_shapes_dtypes_and_range():
    s = load_data(DataConfig(name="digits", test_fraction=0.2))
    assert isinstance(s, DataSplits)
    assert s.name == "digits" and s.classes == [str(i) for i in range(10)] and s.num_classes == 10
    for part in (s.train, s.test, s.labelled_train):
        assert part.images.dtype == torch.uint8 and part.images.shape[1:] == (1, 8, 8)
        assert part.images.is_contiguous()
        assert part.labels.dtype == torch.int64 and part.labels.shape == (len(part),)
    assert len(s.train) + len(s.test) == 1797
    assert abs(len(s.test) - 0.2 * 1797) <= 10
    assert int(s.train.images.min()) == 0 and int(s.train.images.max()) == 255
    assert len(s.unlabeled) == 0 and s.unlabeled.images.shape[1:] == (1, 8, 8)
    assert s.pretrain_images() is s.train.images
    assert len(s.labelled_train) == len(s.train)  # label_fraction defaults to 1
    assert s.skipped_files == []
    x = s.train.images.double() / 255
    assert s.mean == pytest.approx((x.mean().item(),)) and s.std == pytest.approx((x.std(unbiased=False).item(),))


def test_digits_read_without_sklearn_equal_sklearns_loader(monkeypatch):
    from sklearn.datasets import load_digits

    expected = load_digits()
    counts, labels = data_sources.read_digits()  # the bundled CSV, read directly
    assert data_sources._digits_csv() is not None
    assert np.array_equal(counts, expected.images) and np.array_equal(labels, expected.target)
    # Where a scikit-learn release moved the file, its own loader serves: the same arrays.
    monkeypatch.setattr(data_sources, "_digits_csv", lambda: None)
    counts, labels = data_sources.read_digits()
    assert np.array_equal(counts, expected.images) and np.array_equal(labels, expected.target)


def test_digits_test_fraction_and_stratified_split():
    s = load_data(DataConfig(test_fraction=0.5))
    assert abs(len(s.test) - 0.5 * 1797) <= 10
    # Per class, the test share follows the fraction too.
    train_counts, test_counts = s.train.labels.bincount(), s.test.labels.bincount()
    assert torch.all((test_counts.double() / (train_counts + test_counts) - 0.5).abs() < 0.02)


def test_digits_labelled_subset_is_stratified():
    s = load_data(DataConfig(label_fraction=0.1))
    counts = s.train.labels.bincount(minlength=10)
    kept = s.labelled_train.labels.bincount(minlength=10)
    assert torch.all(kept >= 1)
    assert torch.equal(kept, torch.round(counts.double() * 0.1).long())
    # Every labelled image is one of the training images.
    train_rows = {bytes(img.numpy()) for img in s.train.images}
    assert all(bytes(img.numpy()) in train_rows for img in s.labelled_train.images)

    tiny = load_data(DataConfig(label_fraction=0.001))
    assert torch.equal(tiny.labelled_train.labels.bincount(minlength=10), torch.ones(10, dtype=torch.long))


def test_digits_deterministic_by_seed_and_caps():
    cfg = DataConfig(split_seed=3, label_fraction=0.2, max_train_images=100, max_test_images=30)
    a = load_data(cfg)
    clear_cache()  # compare a real second computation, not the cached object
    b = load_data(cfg)
    assert len(a.train) == 100 and len(a.test) == 30
    for part in ("train", "test", "labelled_train"):
        assert torch.equal(getattr(a, part).images, getattr(b, part).images)
        assert torch.equal(getattr(a, part).labels, getattr(b, part).labels)
    c = load_data(DataConfig(split_seed=4, label_fraction=0.2, max_train_images=100, max_test_images=30))
    assert not torch.equal(a.train.images, c.train.images)


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(img.numpy()) for img in images}  # the 1797 digits are all distinct images


def test_validation_split_is_stratified_and_disjoint_from_train_test_and_labels():
    s = load_data(DataConfig(val_fraction=0.1, label_fraction=0.2))
    train_counts, val_counts = s.train.labels.bincount(minlength=10), s.val.labels.bincount(minlength=10)
    assert torch.equal(val_counts, torch.round((train_counts + val_counts).double() * 0.1).long())
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    val_rows = _rows(s.val.images)
    assert len(val_rows) == len(s.val)
    for part in (s.train, s.test, s.labelled_train):
        assert not val_rows & _rows(part.images)
    assert s.pretrain_images() is s.train.images  # BYOL never sees the validation images
    # The labelled subset is drawn from what remains of train.
    assert torch.equal(s.labelled_train.labels.bincount(minlength=10), torch.round(train_counts.double() * 0.2).long())


def test_validation_never_moves_the_test_split_and_is_reproducible():
    design = {"split_seed": 2, "max_train_images": 300, "max_test_images": 100}
    without = load_data(DataConfig(**design))
    with_val = load_data(DataConfig(val_fraction=0.05, **design))
    more_val = load_data(DataConfig(val_fraction=0.1, **design))
    assert len(without.val) == 0
    for s in (with_val, more_val):
        assert torch.equal(s.test.images, without.test.images) and torch.equal(s.test.labels, without.test.labels)
        assert len(s.train) == 300
    assert len(more_val.val) == 100 > len(with_val.val) > 0  # 144 held out, capped like the test set
    clear_cache()
    again = load_data(DataConfig(val_fraction=0.05, **design))
    for part in ("train", "val", "labelled_train"):
        assert torch.equal(getattr(again, part).images, getattr(with_val, part).images)
    assert not torch.equal(load_data(DataConfig(val_fraction=0.05, **{**design, "split_seed": 3})).val.images,
                           with_val.val.images)


def test_tiny_classes_and_unlabelled_images_give_no_validation():
    # Five images a class at 10% round to none held out; an unlabelled image is never held out.
    labels = np.array([c for c in range(3) for _ in range(5)] + [-1] * 20)
    assert len(data_splits._validation_indices(labels, 0.1, np.random.default_rng(0))) == 0
    held = data_splits._validation_indices(labels, 0.5, np.random.default_rng(0))
    assert len(held) == 6 and np.all(labels[held] >= 0)  # round(2.5) = 2 per class
    assert len(data_splits._validation_indices(labels, 0.0, np.random.default_rng(0))) == 0


def test_old_configs_without_val_fraction_load_with_no_validation():
    from byol_core.config import ExperimentConfig, from_dict, to_dict

    data = to_dict(ExperimentConfig())
    del data["data"]["val_fraction"]
    cfg = from_dict(ExperimentConfig, data)
    assert cfg.data.val_fraction == 0.0
    assert len(load_data(cfg.data).val) == 0


def test_cache_returns_shared_tensors_and_fresh_lists():
    calls: list[tuple[str, float]] = []
    a = load_data(DataConfig(), lambda msg, frac: calls.append((msg, frac)))
    b = load_data(DataConfig())
    assert a.train.images.data_ptr() == b.train.images.data_ptr()
    a.classes.append("extra")
    assert b.classes == [str(i) for i in range(10)]
    fractions = [f for _, f in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_imageset_subset_and_validation():
    s = ImageSet(torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).reshape(4, 3, 2, 2), torch.tensor([0, 1, 2, -1]))
    sub = s.subset([3, 1])
    assert torch.equal(sub.labels, torch.tensor([-1, 1])) and torch.equal(sub.images[1], s.images[1])
    assert len(s.subset(torch.tensor([True, False, False, True]))) == 2
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))


def test_available_datasets():
    assert available_datasets() == list(DATASETS)


# --------------------------------------------------------------------------- fashion-mnist
def _idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: magic 0x0000 08 <ndim> (uint8 data), big-endian uint32 dims, raw bytes."""
    magic = (0x08 << 8) | array.ndim  # 2051 for 3-D images, 2049 for 1-D labels
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _fashion_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte": np.arange(12, dtype=np.uint8) % 10,
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": np.array([9, 8, 7, 6, 5], dtype=np.uint8)}


def _check_fashion(s: DataSplits, arrays: dict[str, np.ndarray]) -> None:
    assert s.classes[0] == "T-shirt/top" and s.num_classes == 10
    assert torch.equal(s.train.images, torch.from_numpy(arrays["train-images-idx3-ubyte"])[:, None])
    assert torch.equal(s.train.labels, torch.from_numpy(arrays["train-labels-idx1-ubyte"]).long())
    assert torch.equal(s.test.images, torch.from_numpy(arrays["t10k-images-idx3-ubyte"])[:, None])
    assert torch.equal(s.test.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())


def test_fashion_mnist_from_debian_directory(tmp_path, monkeypatch):
    assert data_sources.DEBIAN_FASHION_MNIST_DIR == "/usr/share/datasets/fashion-mnist"
    arrays = _fashion_arrays()
    for name, array in arrays.items():
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(_idx_bytes(array)))
    monkeypatch.setenv("BYOL_FASHION_MNIST_DIR", str(tmp_path))
    # The root is never consulted when the idx files are found.
    s = load_data(DataConfig(name="fashion-mnist", root=str(tmp_path / "nowhere"), download=False))
    _check_fashion(s, arrays)


def test_fashion_mnist_bad_idx_file_is_a_data_error(tmp_path, monkeypatch):
    for name, array in _fashion_arrays().items():
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(_idx_bytes(array)))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01garbage"))
    monkeypatch.setenv("BYOL_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(DataError, match="2051"):
        load_data(DataConfig(name="fashion-mnist", download=False))


def test_fashion_mnist_via_torchvision(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("BYOL_FASHION_MNIST_DIR", str(empty))
    # torchvision 0.29 reads the unzipped files from <root>/FashionMNIST/raw/ (no md5 check on them).
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = _fashion_arrays(seed=1)
    for name, array in arrays.items():
        (raw / name).write_bytes(_idx_bytes(array))
    s = load_data(DataConfig(name="fashion-mnist", root=str(tmp_path / "root"), download=False))
    _check_fashion(s, arrays)


# --------------------------------------------------------------------------- cifar10
def test_cifar10_via_torchvision(tmp_path, monkeypatch):
    _accept_all_files(monkeypatch, "cifar")
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    train_chw = rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8)
    test_chw = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    train_labels = [i % 10 for i in range(10)]
    # The real batches are pickled dicts whose "data" rows are 3072 bytes: R plane, G plane, B plane.
    for i in range(5):
        rows = slice(2 * i, 2 * i + 2)
        batch = {"data": train_chw[rows].reshape(2, -1), "labels": train_labels[rows],
                 "batch_label": f"training batch {i + 1} of 5"}
        (base / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch))
    (base / "test_batch").write_bytes(pickle.dumps({"data": test_chw.reshape(3, -1), "labels": [3, 1, 4]}))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}))

    s = load_data(DataConfig(name="cifar10", root=str(tmp_path), download=False))
    assert s.classes == names
    assert torch.equal(s.train.images, torch.from_numpy(train_chw))
    assert torch.equal(s.train.labels, torch.tensor(train_labels))
    assert torch.equal(s.test.images, torch.from_numpy(test_chw))
    assert torch.equal(s.test.labels, torch.tensor([3, 1, 4]))
    assert len(s.mean) == 3 and len(s.std) == 3
    assert is_disk_backed(s.train.images) and is_disk_backed(s.test.images)  # read from the set's disk cache


# --------------------------------------------------------------------------- stl10
def _stl_bytes(images_chw: np.ndarray) -> bytes:
    # STL10 stores each channel column-major, i.e. as the transpose of the image.
    return np.ascontiguousarray(images_chw.transpose(0, 1, 3, 2)).tobytes()


def _write_stl10(root: Path, n_unlabeled: int = 4) -> dict[str, np.ndarray]:
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"train": rng.integers(0, 256, (3, 3, 96, 96), dtype=np.uint8),
              "test": rng.integers(0, 256, (2, 3, 96, 96), dtype=np.uint8),
              "unlabeled": rng.integers(0, 256, (n_unlabeled, 3, 96, 96), dtype=np.uint8)}
    for split, images in arrays.items():
        (base / f"{split}_X.bin").write_bytes(_stl_bytes(images))
    (base / "train_y.bin").write_bytes(bytes([1, 10, 5]))  # labels are stored 1..10
    (base / "test_y.bin").write_bytes(bytes([2, 3]))
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (base / "class_names.txt").write_text("\n".join(names) + "\n")
    return arrays


def test_stl10_via_torchvision(tmp_path, monkeypatch):
    _accept_all_files(monkeypatch, "stl10")
    arrays = _write_stl10(tmp_path)
    s = load_data(DataConfig(name="stl10", root=str(tmp_path), download=False))
    assert s.classes[0] == "airplane" and s.num_classes == 10
    assert torch.equal(s.train.images, torch.from_numpy(arrays["train"]))
    assert torch.equal(s.train.labels, torch.tensor([0, 9, 4]))
    assert torch.equal(s.test.images, torch.from_numpy(arrays["test"]))
    assert torch.equal(s.test.labels, torch.tensor([1, 2]))
    assert torch.equal(s.unlabeled.images, torch.from_numpy(arrays["unlabeled"]))
    assert torch.all(s.unlabeled.labels == -1)
    pre = s.pretrain_images()
    assert pre.shape == (3 + 4, 3, 96, 96)
    assert torch.equal(pre[:3], s.train.images) and torch.equal(pre[3:], s.unlabeled.images)


def test_stl10_unlabeled_cap(tmp_path, monkeypatch):
    _accept_all_files(monkeypatch, "stl10")
    arrays = _write_stl10(tmp_path, n_unlabeled=6)
    s = load_data(DataConfig(name="stl10", root=str(tmp_path), download=False, max_unlabeled_images=2))
    assert len(s.unlabeled) == 2
    originals = {bytes(img) for img in arrays["unlabeled"]}
    assert all(bytes(img.numpy()) in originals for img in s.unlabeled.images)
    none = load_data(DataConfig(name="stl10", root=str(tmp_path), download=False, max_unlabeled_images=0))
    assert len(none.unlabeled) == 0 and none.pretrain_images().shape[0] == 3


# --------------------------------------------------------------------------- missing data
@pytest.mark.parametrize("name", ["cifar10", "stl10", "fashion-mnist"])
def test_missing_files_without_download_is_a_data_error(name, tmp_path, monkeypatch):
    monkeypatch.setenv("BYOL_FASHION_MNIST_DIR", str(tmp_path))  # no idx files there
    root = tmp_path / "root"
    with pytest.raises(DataError) as info:
        load_data(DataConfig(name=name, root=str(root), download=False))
    message = str(info.value)
    assert name in message and str(root) in message and "download" in message
    assert info.value.__cause__ is not None


def test_failed_download_is_a_data_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    with pytest.raises(DataError, match="network") as info:
        load_data(DataConfig(name="cifar10", root=str(tmp_path), download=True))
    assert "cifar10" in str(info.value) and str(tmp_path) in str(info.value)
    assert isinstance(info.value.__cause__, URLError)


# --------------------------------------------------------------------------- folder
def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (12, 10)) -> None:
    Image.new("RGB", size, colour).save(path)


def test_folder_with_class_subfolders(tmp_path):
    for name, colour in (("dog", (200, 10, 10)), ("cat", (10, 200, 10))):
        (tmp_path / name).mkdir()
        for i in range(4):
            _png(tmp_path / name / f"{i}.PNG", colour, size=(12 + i, 10))
    corrupt = tmp_path / "cat" / "broken.jpg"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes())
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "empty_dir").mkdir()  # no images: not a class

    s = load_data(DataConfig(name="folder", root=str(tmp_path / ".root"), folder=str(tmp_path), folder_image_size=8, test_fraction=0.25))
    assert s.classes == ["cat", "dog"]
    assert len(s.train) + len(s.test) == 8
    assert s.train.images.shape[1:] == (3, 8, 8) and s.train.images.dtype == torch.uint8
    # Stratified: each class has one test image (round(0.25 * 4)).
    assert torch.equal(s.test.labels.sort().values, torch.tensor([0, 1]))
    assert len(s.skipped_files) == 1 and s.skipped_files[0].startswith(f"{corrupt}: ")
    # Labels follow the folders: cat images are green, dog images red.
    for images, labels in ((s.train.images, s.train.labels), (s.test.images, s.test.labels)):
        green = images[:, 1].float().mean((1, 2)) > images[:, 0].float().mean((1, 2))
        assert torch.equal(green, labels == 0)


def test_folder_centre_crops(tmp_path):
    img = np.zeros((10, 30, 3), dtype=np.uint8)
    img[:, :10, 0] = 255  # red left third
    img[:, 10:20, 1] = 255  # green middle
    img[:, 20:, 2] = 255  # blue right third
    Image.fromarray(img).save(tmp_path / "wide.png")
    _png(tmp_path / "other.png", (0, 0, 0))
    s = load_data(DataConfig(name="folder", root=str(tmp_path / ".root"), folder=str(tmp_path), folder_image_size=8, test_fraction=0.5))
    images = torch.cat([s.train.images, s.test.images])
    wide = images[images[:, 1].float().mean((1, 2)) > 0]
    assert len(wide) == 1
    assert wide[0, 1].float().mean() > 200 and wide[0, 0].float().mean() < 30 and wide[0, 2].float().mean() < 30


def test_folder_without_subfolders_is_unlabelled(tmp_path):
    for i in range(5):
        _png(tmp_path / f"img{i}.png", (i * 40, 0, 0))
    s = load_data(DataConfig(name="folder", root=str(tmp_path / ".root"), folder=str(tmp_path), folder_image_size=8))
    assert s.classes == [] and s.num_classes == 0
    assert len(s.train) + len(s.test) == 5 and len(s.test) >= 1
    assert torch.all(s.train.labels == -1) and torch.all(s.test.labels == -1)
    assert len(s.labelled_train) == 0


def test_empty_missing_or_unreadable_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no images"):
        load_data(DataConfig(name="folder", root=str(tmp_path / ".root"), folder=str(tmp_path)))
    missing = tmp_path / "missing"
    with pytest.raises(DataError, match="does not exist") as info:
        load_data(DataConfig(name="folder", folder=str(missing)))
    assert str(missing) in str(info.value)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="could be read"):
        load_data(DataConfig(name="folder", root=str(tmp_path / ".root"), folder=str(tmp_path)))


def test_folder_is_decoded_once_then_read_from_the_disk_cache(tmp_path, monkeypatch):
    from byol_core.data import folder as folder_data
    from byol_core.data import loading as data

    images_dir = tmp_path / "imgs"
    (images_dir / "a").mkdir(parents=True)
    (images_dir / "b").mkdir()
    for i in range(3):
        _png(images_dir / "a" / f"{i}.png", (200, 0, 0))
        _png(images_dir / "b" / f"{i}.png", (0, 0, 200))
    cfg = DataConfig(name="folder", root=str(tmp_path / "root"), folder=str(images_dir), folder_image_size=8)
    first = load_data(cfg)
    assert len(list((tmp_path / "root" / "cache").glob("folder-*-8px/images-*.u8"))) == 1

    data.clear_cache()  # a new process: nothing in memory
    monkeypatch.setattr(folder_data, "_decode", lambda *a: (_ for _ in ()).throw(AssertionError("decoded again")))
    second = load_data(cfg)
    assert torch.equal(first.train.images, second.train.images) and second.classes == ["a", "b"]

    _png(images_dir / "a" / "3.png", (190, 0, 0))  # the folder changed: the new file alone is decoded
    data.clear_cache()
    third = load_data(cfg)  # the stub decoder ran on it (and only on it): it is listed as skipped
    assert [f.split(": ")[0] for f in third.skipped_files] == [str(images_dir / "a" / "3.png")]
    assert "decoded again" in third.skipped_files[0]


def test_loading_a_system_folder_is_refused_with_the_reason_before_walking_it():
    # Any caller (the Data page too, not only a planned job) gets a DataError, never a PermissionError.
    with pytest.raises(DataError, match="inside /proc, a system folder"):
        load_data(DataConfig(name="folder", folder="/proc/self"))

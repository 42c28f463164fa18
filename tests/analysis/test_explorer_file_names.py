"""Image names in the explorer: file paths inside the folder for image folders, "<part> #<index>" otherwise."""

import csv
import dataclasses
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from byol_core.analysis.embeddings import (
    RANDOM_INIT,
    Filters,
    compute_embeddings,
    embedding_cache_path,
    filter_mask,
    gather_images,
    selection_csv,
    write_projector_tsv,
)
from byol_core.analysis.embeddings import sets as sets_module
from byol_core.analysis.embeddings.cache import load_npz, pack_strings, save_npz, unpack_strings
from byol_core.config import DataConfig
from byol_core.data import load_data
from byol_core.data.disk_images import DiskImages
from byol_core.data.folder import _decode
from byol_core.lab.run_store import RunStore
from byol_core.methods.networks import build_encoder
from byol_core.presets import get_preset

SIZE = 12
PER_CLASS = 10


def _class_folder(root: Path) -> Path:
    """cat/ and dog/ subfolders of small random JPEGs and PNGs, named like camera files."""
    rng = np.random.default_rng(1)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 256, (16 + i, 20 + 2 * i, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"IMG_{40 + i:04d}.{'jpg' if i % 2 else 'png'}")
    return root


def _embed_with(monkeypatch, cfg) -> None:
    """compute_embeddings' random init built from ``cfg`` (a tiny CNN) instead of the byol-paper preset's."""
    monkeypatch.setattr(sets_module, "reference_config", lambda store, reference_run: cfg)
    monkeypatch.setattr(sets_module, "encoder_from_source",
                        lambda store, source, reference_run=None: (build_encoder(cfg.model).eval(), cfg))


@pytest.fixture()
def folder_set(tmp_path, monkeypatch):
    folder = _class_folder(tmp_path / "photos")
    data = DataConfig(name="folder", folder=str(folder), root=str(tmp_path / "data"), folder_image_size=SIZE,
                      max_train_images=None, max_test_images=None)
    cfg = dataclasses.replace(get_preset("tiny"), data=data)
    _embed_with(monkeypatch, cfg)
    store = RunStore(tmp_path / "runs")
    splits = load_data(data)
    total = sum(len(part) for part in (splits.test, splits.train, splits.val, splits.unlabeled))
    es = compute_embeddings(store, RANDOM_INIT, max_points=total, scope="all")
    return store, folder, splits, es, total


def test_folder_images_are_named_by_their_path_in_the_folder(folder_set):
    _store, folder, splits, es, total = folder_set
    names = es.names().tolist()
    # Every file once (the whole collection), as its path inside the folder, in its class's subfolder.
    assert sorted(names) == sorted(f"{c}/IMG_{40 + i:04d}.{'jpg' if i % 2 else 'png'}"
                                   for c in ("cat", "dog") for i in range(PER_CLASS))
    assert len(names) == total
    assert [n.split("/")[0] for n in names] == [es.classes[label] for label in es.labels.tolist()]
    # Row i's name is the file row i's image was decoded from.
    shown = gather_images(splits, es.part_codes(), es.indices)
    for row in range(0, total, 3):
        assert torch.equal(shown[row], torch.from_numpy(np.array(_decode(folder / names[row], SIZE)))), names[row]


def test_the_name_filter_and_the_exports_carry_the_file_paths(folder_set, tmp_path):
    _store, _folder, _splits, es, _total = folder_set
    cats = filter_mask(es, Filters(name="cat/"))
    assert cats.sum() == PER_CLASS and (es.labels[cats] == es.classes.index("cat")).all()
    one = filter_mask(es, Filters(name="img_0043.JPG"))  # case-blind, both classes hold that file name
    assert sorted(es.names()[one].tolist()) == ["cat/IMG_0043.jpg", "dog/IMG_0043.jpg"]

    rows = np.flatnonzero(cats)
    read = list(csv.DictReader(io.StringIO(selection_csv(es, rows))))
    assert [r["name"] for r in read] == es.names()[rows].tolist()
    assert all(r["name"].startswith("cat/") and r["class"] == "cat" for r in read)
    assert {r["part"] for r in read} <= {"test", "train", "val", "unlabeled"}  # where it is stays readable too

    _vectors, metadata = write_projector_tsv(es, tmp_path / "projector")
    lines = metadata.read_text().splitlines()
    assert [line.split("\t")[1] for line in lines[1:]] == es.names().tolist()


def test_file_names_survive_the_cache_and_old_sets_fall_back(folder_set, monkeypatch):
    store, _folder, _splits, es, total = folder_set
    monkeypatch.setattr(sets_module, "encoder_from_source", lambda *a, **k: pytest.fail("not from the cache"))
    again = compute_embeddings(store, RANDOM_INIT, max_points=total, scope="all")
    assert again.names().tolist() == es.names().tolist()

    # A set cached before file names were kept: it still loads, its names are "<part> #<index>".
    path = embedding_cache_path(store, RANDOM_INIT, max_points=total, scope="all")
    arrays = load_npz(path, ("features", "labels", "indices", "classes", "parts"))
    save_npz(path, **arrays)
    old = compute_embeddings(store, RANDOM_INIT, max_points=total, scope="all")
    np.testing.assert_array_equal(old.features, es.features)
    assert old.file_names is None
    assert old.names().tolist() == [f"{('test', 'train', 'val', 'unlabeled')[p]} #{i}"
                                    for p, i in zip(es.part_codes().tolist(), es.indices.tolist(), strict=True)]


def test_built_in_data_sets_keep_part_and_index_names(tmp_path, monkeypatch):
    cfg = get_preset("tiny")  # digits
    _embed_with(monkeypatch, cfg)
    es = compute_embeddings(RunStore(tmp_path / "runs"), RANDOM_INIT, max_points=len(load_data(cfg.data).test))
    assert es.file_names is None
    row = int(np.flatnonzero(es.indices == 17)[0])
    assert es.names()[row] == "test #17"
    assert filter_mask(es, Filters(name="test #17")).tolist() == (es.indices == 17).tolist()
    assert [r["name"] for r in csv.DictReader(io.StringIO(selection_csv(es, [row])))] == ["test #17"]


def test_disk_images_carry_their_names_through_subsets_joins_and_pickling(tmp_path):
    path = tmp_path / "rows.u8"
    path.write_bytes(np.arange(6 * 3, dtype=np.uint8).tobytes())
    names = np.array([f"c/{i}.png" for i in range(6)], dtype=object)
    images = DiskImages(path, (3, 1, 1), [5, 4, 3, 2, 1, 0], names=names)
    assert images.file_names().tolist() == names.tolist()
    picked = images.take(torch.tensor([4, 1]))
    assert picked.file_names().tolist() == ["c/4.png", "c/1.png"] and picked[0].flatten().tolist() == [3, 4, 5]
    masked = images.take(np.array([True, False, True, False, False, False]))
    assert masked.file_names().tolist() == ["c/0.png", "c/2.png"]
    assert picked.concat(masked).file_names().tolist() == ["c/4.png", "c/1.png", "c/0.png", "c/2.png"]
    assert np.shares_memory(images.sharded().file_names(), images.file_names())  # a view: no copy per view
    assert pickle.loads(pickle.dumps(picked)).file_names().tolist() == ["c/4.png", "c/1.png"]
    # Without names on either side a join knows none; a wrong count is refused.
    assert picked.concat(DiskImages(path, (3, 1, 1), [0])).file_names() is None
    with pytest.raises(ValueError, match="2 names for 3 rows"):
        DiskImages(path, (3, 1, 1), [0, 1, 2], names=["a", "b"])


def test_names_pack_into_a_compact_array_and_back():
    names = ["cat/IMG_0042.jpg", "dög/ünïcode 1.png", "a b/c,d.jpg", "x/\udcff.png"]  # \udcff: an undecodable byte
    packed = pack_strings(np.array(names, dtype=object))
    assert packed.dtype == np.uint8
    assert unpack_strings(packed, len(names)).tolist() == names
    assert unpack_strings(packed, 3) is None  # a damaged file reads as missing
    assert unpack_strings(pack_strings([]), 0).tolist() == []

"""The explorer over embeddings: filters, saved selections, exports read back, similar images, whole collections."""

import json
from io import BytesIO

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from byol_core.analysis import embeddings
from byol_core.analysis.embeddings import (
    PARTS,
    EmbeddingSet,
    Filters,
    ProgressBoard,
    SavedSelection,
    cell_rows,
    collection_size,
    compute_embeddings,
    delete_selection,
    embed_upload,
    filter_mask,
    load_selections,
    neighbour_share,
    save_selection,
    selection_csv,
    separation_scores,
    similar_to,
    umap_2d,
    write_parquet,
    write_projector_tsv,
)
from byol_core.data import load_data
from byol_core.lab import runner
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.methods.evaluation import embed
from byol_core.presets import get_preset


def _set(n: int = 12, dim: int = 4, parts: bool = False) -> EmbeddingSet:
    rng = np.random.default_rng(0)
    labels = np.arange(n, dtype=np.int64) % 3
    labels[-1] = -1  # one unlabelled image
    return EmbeddingSet(source="run-x", features=rng.normal(size=(n, dim)).astype(np.float32), labels=labels,
                        indices=np.arange(100, 100 + n, dtype=np.int64), classes=["cat", "dog", "fox"],
                        parts=(np.arange(n) % 2).astype(np.int8) if parts else None)


# --------------------------------------------------------------------------- filters
def test_filters_by_class_prediction_correctness_and_name():
    es = _set()
    predicted = np.array([0, 1, 1, 0, 1, 2, 0, 0, 2, 0, 1, 2], dtype=np.int64)
    right = (predicted == es.labels) & (es.labels >= 0)
    assert filter_mask(es, Filters()).all()
    assert filter_mask(es, Filters(classes=(1,))).tolist() == (es.labels == 1).tolist()
    assert filter_mask(es, Filters(predicted=(2,)), predicted).tolist() == (predicted == 2).tolist()
    assert filter_mask(es, Filters(correctness="correct"), predicted).tolist() == right.tolist()
    wrong = filter_mask(es, Filters(correctness="incorrect"), predicted)
    assert wrong.tolist() == ((~right) & (es.labels >= 0)).tolist()  # unlabelled: neither right nor wrong
    assert not wrong[-1]
    both = filter_mask(es, Filters(classes=(0,), correctness="incorrect"), predicted)
    assert np.flatnonzero(both).tolist() == [i for i in range(12) if es.labels[i] == 0 and predicted[i] != 0]
    named = filter_mask(es, Filters(name="TEST #10"))  # case-insensitive
    assert [n for n, keep in zip(es.names(), named, strict=True) if keep] == ["test #100", "test #101", "test #102",
                                                                                "test #103", "test #104", "test #105",
                                                                                "test #106", "test #107", "test #108",
                                                                                "test #109"]
    assert np.flatnonzero(filter_mask(es, Filters(name=" #111 "))).tolist() == [11]
    with pytest.raises(ValueError, match="need each image's prediction"):
        filter_mask(es, Filters(correctness="correct"))
    with pytest.raises(ValueError, match="correctness 'maybe'"):
        filter_mask(es, Filters(correctness="maybe"), predicted)
    assert Filters(name="  ").active is False and Filters(classes=(1,)).active


def test_a_confusion_cell_lists_its_rows():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 0, 0, 2])
    assert cell_rows(labels, predicted, 1, 0).tolist() == [3, 4]
    assert cell_rows(labels, predicted, 2, 1).tolist() == []


def test_names_say_the_part_and_the_index():
    es = _set(4, parts=True)
    assert es.names().tolist() == ["test #100", "train #101", "test #102", "train #103"]
    assert _set(2).part_codes().tolist() == [0, 0]


# --------------------------------------------------------------------------- similar images
def test_similar_to_finds_the_constructed_neighbours_in_order():
    features = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.7, 0.7, 0], [-1, 0, 0], [2, 0.02, 0]],
                        dtype=np.float32)
    rows, sims = similar_to(features, features[0], k=3, exclude=0)
    assert rows.tolist() == [5, 1, 3]  # cosine: length does not matter, direction does
    assert sims[0] == pytest.approx(1.0, abs=1e-3) and sims[0] >= sims[1] >= sims[2]
    rows, _ = similar_to(features, np.array([0, 1, 0]), k=2)  # a query from outside (an upload)
    assert rows.tolist() == [2, 3]
    assert len(similar_to(features, features[0], k=50, exclude=0)[0]) == 5
    with pytest.raises(ValueError, match="same encoder"):
        similar_to(features, np.ones(4), k=2)


# --------------------------------------------------------------------------- saved selections and exports
def test_saved_selections_round_trip_replace_and_delete(tmp_path):
    es = _set()
    first = SavedSelection(name="odd ones", data_key="digits|12", rows=(1, 3, 5), names=("a", "b", "c"), created=1.0)
    path = save_selection(tmp_path, first)
    assert json.loads(path.read_text())["rows"] == [1, 3, 5]
    save_selection(tmp_path, SavedSelection(name="other set", data_key="fmnist|12", rows=(2,), created=2.0))
    assert load_selections(tmp_path, "digits|12") == [first]
    assert [s.name for s in load_selections(tmp_path)] == ["other set", "odd ones"]  # newest first
    save_selection(tmp_path, SavedSelection(name=" odd ones ", data_key="digits|12", rows=(7,), created=3.0))
    assert [s.rows for s in load_selections(tmp_path, "digits|12")] == [(7,)]  # same name, same images: replaced
    (tmp_path / "_selections" / "broken.json").write_text("{not json")
    assert len(load_selections(tmp_path)) == 2  # a damaged file is skipped
    delete_selection(tmp_path, load_selections(tmp_path, "digits|12")[0])
    assert load_selections(tmp_path, "digits|12") == []
    with pytest.raises(ValueError, match="give the selection a name"):
        save_selection(tmp_path, SavedSelection(name="  ", data_key="k", rows=(1,)))
    with pytest.raises(ValueError, match="empty"):
        save_selection(tmp_path, SavedSelection(name="x", data_key="k", rows=()))
    with pytest.raises(ValueError, match="one line"):
        save_selection(tmp_path, SavedSelection(name="a\nb", data_key="k", rows=(1,)))
    assert len(es) == 12


def test_selection_csv_reads_back_with_names_and_labels(tmp_path):
    es = _set(parts=True)
    predicted = np.zeros(len(es), dtype=np.int64)
    text = selection_csv(es, [0, 1, 11], predicted)
    (tmp_path / "s.csv").write_text(text)
    table = pd.read_csv(tmp_path / "s.csv")
    assert table["name"].tolist() == ["test #100", "train #101", "train #111"]
    assert table["label"].tolist() == [0, 1, -1]
    assert table["class"].tolist() == ["cat", "dog", "unlabelled"]
    assert table["predicted"].tolist() == ["cat", "cat", "cat"]
    assert table["correct"].tolist()[:2] == [True, False] and pd.isna(table["correct"][2])


def test_parquet_and_projector_tsv_export_read_back(tmp_path):
    es = _set()
    xy = np.arange(2 * len(es), dtype=np.float32).reshape(-1, 2)
    predicted = np.full(len(es), 1, dtype=np.int64)
    path = write_parquet(es, tmp_path / "out" / "embeddings.parquet", predicted=predicted, xy=xy)
    frame = pd.read_parquet(path)
    assert len(frame) == len(es) and frame["name"].tolist() == es.names().tolist()
    assert frame["label"].tolist() == es.labels.tolist() and frame["predicted"].iloc[0] == "dog"
    np.testing.assert_allclose(np.stack(frame["vector"].to_numpy()), es.features, rtol=0, atol=0)
    np.testing.assert_allclose(frame[["x", "y"]].to_numpy(), xy)

    vectors, metadata = write_projector_tsv(es, tmp_path / "tsv", predicted=predicted)
    back = pd.read_csv(vectors, sep="\t", header=None).to_numpy()
    np.testing.assert_allclose(back, es.features, rtol=1e-5)
    meta = pd.read_csv(metadata, sep="\t")
    assert len(meta) == len(es) and meta["class"].tolist()[:3] == ["cat", "dog", "fox"]


# --------------------------------------------------------------------------- scale
def test_progress_board_records_the_last_report():
    board = ProgressBoard()
    assert board.get("k") is None
    report = board.reporter("k")
    report(10, 100)
    report(40, 100)
    assert board.get("k") == (40, 100) and board.get("other") is None


def test_big_sets_fit_umap_on_a_subsample_and_place_the_rest_among_their_neighbours(monkeypatch):
    fitted_sizes = []

    class FakeUMAP:  # "fits" by keeping the first two features
        def fit_transform(self, x):
            fitted_sizes.append(len(x))
            return x[:, :2] * 10.0

    monkeypatch.setattr(embeddings.projection, "umap_model", lambda *a, **k: FakeUMAP())
    rng = np.random.default_rng(0)
    centres = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    labels = np.repeat(np.arange(3), 40)
    x = centres[labels] + 0.05 * rng.normal(size=(120, 3)).astype(np.float32)
    layout = umap_2d(x, fit_max=30)
    assert fitted_sizes == [30] and layout.shape == (120, 2) and np.isfinite(layout).all()
    for c in range(3):  # every point, fitted or placed, lands within its own cluster's fitted spread
        own = layout[labels == c]
        assert np.abs(own - own.mean(axis=0)).max() < 2.0
    # A point identical to one fitted point, far from the others, lands on it.
    placed = embeddings.projection.place_by_neighbours(centres, np.array([[0, 0], [5, 5], [9, 0]]),
                                                       np.array([[0, 1, 0]]), k=3)
    np.testing.assert_allclose(placed, [[5, 5]], atol=1e-3)


def test_large_sets_score_separation_and_group_share_on_a_sample():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(2), 300)
    features = np.where(labels[:, None] == 0, 5.0, -5.0) + rng.normal(size=(600, 4))
    full = separation_scores(features, labels)
    sampled = separation_scores(features, labels, max_points=100)
    assert full["knn_accuracy"] == pytest.approx(1.0) and sampled["knn_accuracy"] == pytest.approx(1.0)
    share, chance = neighbour_share(features, np.flatnonzero(labels == 0), k=5, max_queries=50)
    assert share > 0.95 and chance == pytest.approx(299 / 599)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("explorer") / "runs")
    return store, runner.start(plan("byol", get_preset("tiny")), store)


def test_the_whole_collection_is_embedded_with_progress_and_cached(tiny_run, monkeypatch):
    store, run = tiny_run
    cfg = run.read_config()[0]
    splits = load_data(cfg.data)
    total = collection_size(splits, "all")
    assert total == len(splits.test) + len(splits.train) + len(splits.val) + len(splits.unlabeled) > len(splits.test)
    reports = []
    monkeypatch.setattr(embeddings.sets, "EMBED_CHUNK", 100)
    es = compute_embeddings(store, run.id, max_points=total, scope="all",
                            progress=lambda done, n: reports.append((done, n)))
    assert len(es) == total and reports[-1] == (total, total) and len(reports) == -(-total // 100)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)
    # Every image once: (part, index) pairs cover each part exactly.
    for code, part in enumerate(PARTS):
        n = len(getattr(splits, part))
        assert sorted(es.indices[es.part_codes() == code].tolist()) == list(range(n))
    # Rows are the right images with the right labels: spot-check a few against a direct embedding.
    rows = np.flatnonzero(es.part_codes() == 1)[:5]
    encoder = embeddings.encoder_from_source(store, run.id)[0]
    direct = embed(encoder, splits.train.images[torch.as_tensor(es.indices[rows])], cfg.augment.image_size,
                   splits.mean, splits.std)
    np.testing.assert_allclose(es.features[rows], direct.numpy(), atol=1e-4, rtol=1e-4)
    assert es.labels[rows].tolist() == splits.train.labels[torch.as_tensor(es.indices[rows])].tolist()

    monkeypatch.setattr(embeddings.sets, "encoder_from_source", lambda *a, **k: pytest.fail("not from the cache"))
    again = compute_embeddings(store, run.id, max_points=total, scope="all")
    np.testing.assert_array_equal(again.parts, es.parts)
    with pytest.raises(ValueError, match="scope 'everything'"):
        compute_embeddings(store, run.id, max_points=10, scope="everything")


def test_an_uploaded_image_is_embedded_like_the_data_sets_images(tiny_run):
    store, run = tiny_run
    cfg = run.read_config()[0]
    splits = load_data(cfg.data)
    image = splits.test.images[3]  # (C, H, W) uint8
    pixels = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    features = embed_upload(store, run.id, buffer.getvalue())
    es = compute_embeddings(store, run.id, max_points=len(splits.test))
    row = int(np.flatnonzero(es.indices == 3)[0])
    rows, sims = similar_to(es.features, features, k=1)
    assert rows[0] == row and sims[0] == pytest.approx(1.0, abs=1e-4)  # the same image finds itself
    with pytest.raises(ValueError, match="not an image"):
        embed_upload(store, run.id, b"definitely not a png")


def test_pca_of_a_big_set_fits_a_sample_projects_all_and_is_cached(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 6)) * np.array([5, 3, 1, 0.5, 0.2, 0.1])).astype(np.float32)
    full = embeddings.pca_2d(x)
    monkeypatch.setattr(embeddings.projection, "PCA_FIT_MAX", 100)
    sampled = embeddings.pca_2d(x, cache_dir=tmp_path)
    assert sampled.shape == (400, 2)
    for axis in range(2):  # the same axes, up to sign, from a quarter of the rows
        assert abs(np.corrcoef(full[:, axis], sampled[:, axis])[0, 1]) > 0.95
    assert len(list(tmp_path.glob("pca-*.npz"))) == 1
    monkeypatch.setattr(np.random, "default_rng", lambda *a: pytest.fail("recomputed instead of read from the cache"))
    np.testing.assert_array_equal(embeddings.pca_2d(x, cache_dir=tmp_path), sampled)

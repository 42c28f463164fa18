import os
import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest
import torch

from byol_core.analysis import embeddings
from byol_core.analysis.embeddings import (
    RANDOM_INIT,
    EmbeddingSet,
    KeyedFutures,
    compute_embeddings,
    embedding_cache_path,
    encoder_from_source,
    knn_predict_set,
    nearest_neighbours,
    neighbour_share,
    pca_2d,
    separation_scores,
    set_predictions,
    umap_2d,
)
from byol_core.analysis.error_analysis import knn_predictions
from byol_core.data import load_data
from byol_core.lab import runner
from byol_core.lab.plans import plan
from byol_core.lab.run_store import RunStore
from byol_core.methods.evaluation import knn_predict
from byol_core.methods.networks import build_encoder
from byol_core.presets import get_preset


@pytest.fixture(scope="module")
def byol_run(tmp_path_factory):
    """One real tiny BYOL run (about 2 s), shared by the tests of this module."""
    store = RunStore(tmp_path_factory.mktemp("emb") / "runs")
    run = runner.start(plan("byol", get_preset("tiny")), store)
    return store, run


def _clusters(n_per: int = 30, dim: int = 16, n_classes: int = 3, seed: int = 0):
    """Tight, well-separated clusters along different axes, and their labels."""
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for c in range(n_classes):
        centre = np.zeros(dim)
        centre[c] = 10.0
        feats.append(centre + rng.normal(scale=0.5, size=(n_per, dim)))
        labels += [c] * n_per
    return np.concatenate(feats).astype(np.float32), np.array(labels, dtype=np.int64)


def _fail(*_args, **_kwargs):
    raise AssertionError("should have been served from the cache")


# --------------------------------------------------------------------------- embeddings
def test_embeddings_of_a_run_and_of_random_init(byol_run, monkeypatch):
    store, run = byol_run
    cfg, _, _ = run.read_config()
    splits = load_data(cfg.data)

    learned = compute_embeddings(store, run.id, max_points=100)
    assert isinstance(learned, EmbeddingSet) and learned.source == run.id
    assert learned.features.dtype == np.float32 and learned.features.ndim == 2
    assert learned.features.shape[0] == 100 and np.isfinite(learned.features).all()
    assert learned.labels.dtype == np.int64 and learned.indices.dtype == np.int64
    assert len(set(learned.indices.tolist())) == 100
    assert learned.indices.min() >= 0 and learned.indices.max() < len(splits.test)
    assert np.array_equal(learned.labels, splits.test.labels.numpy()[learned.indices])
    assert learned.classes == list(splits.classes)
    assert len(np.unique(learned.labels)) > 3  # a mixed subset, not the first class only

    random = compute_embeddings(store, RANDOM_INIT, reference_run=run.id, max_points=100)
    assert random.source == RANDOM_INIT
    assert random.features.shape == learned.features.shape
    assert np.array_equal(random.indices, learned.indices)  # same images for every source
    assert np.array_equal(random.labels, learned.labels)
    assert not np.allclose(random.features, learned.features, atol=1e-3)

    # Both are on disk now; a second call (as in a new process: no in-memory state) loads the file.
    assert embedding_cache_path(store, run.id, max_points=100).is_file()
    assert embedding_cache_path(store, RANDOM_INIT, reference_run=run.id, max_points=100).is_file()
    monkeypatch.setattr(embeddings.sets, "embed", _fail)
    again = compute_embeddings(store, run.id, max_points=100)
    np.testing.assert_array_equal(again.features, learned.features)
    np.testing.assert_array_equal(again.indices, learned.indices)
    np.testing.assert_array_equal(again.labels, learned.labels)
    assert again.classes == learned.classes
    again_random = compute_embeddings(store, RANDOM_INIT, reference_run=run.id, max_points=100)
    np.testing.assert_array_equal(again_random.features, random.features)


def test_subsets_are_prefixes_and_capped_at_the_test_set(byol_run):
    store, run = byol_run
    n_test = len(load_data(run.read_config()[0].data).test)
    small = compute_embeddings(store, run.id, max_points=20)
    everything = compute_embeddings(store, run.id, max_points=10_000)
    assert len(everything) == n_test
    assert sorted(everything.indices.tolist()) == list(range(n_test))
    assert np.array_equal(everything.indices[:20], small.indices)
    np.testing.assert_allclose(everything.features[:20], small.features, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="max_points"):
        compute_embeddings(store, run.id, max_points=0)


def test_a_rewritten_encoder_invalidates_the_cache(byol_run, monkeypatch):
    store, run = byol_run
    compute_embeddings(store, run.id, max_points=30)
    old = embedding_cache_path(store, run.id, max_points=30)
    stat = run.encoder_path.stat()
    os.utime(run.encoder_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert embedding_cache_path(store, run.id, max_points=30) != old
    monkeypatch.setattr(embeddings.sets, "embed", _fail)
    with pytest.raises(AssertionError, match="from the cache"):
        compute_embeddings(store, run.id, max_points=30)


def test_concurrent_requests_for_one_set_embed_once(byol_run, monkeypatch):
    store, run = byol_run
    calls = []
    real_embed = embeddings.sets.embed

    def slow_embed(*args, **kwargs):
        calls.append(1)
        time.sleep(0.2)
        return real_embed(*args, **kwargs)

    monkeypatch.setattr(embeddings.sets, "embed", slow_embed)
    results = []
    threads = [threading.Thread(target=lambda: results.append(compute_embeddings(store, run.id, max_points=40)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 3
    for r in results[1:]:
        np.testing.assert_array_equal(r.features, results[0].features)


def test_random_init_is_seeded_like_evaluate_and_leaves_the_global_rng_alone(byol_run):
    store, run = byol_run
    cfg, _, _ = run.read_config()
    torch.manual_seed(cfg.seed)
    expected = build_encoder(cfg.model).model.state_dict()

    torch.manual_seed(123)
    draw = torch.rand(3)
    torch.manual_seed(123)
    encoder, got_cfg = encoder_from_source(store, RANDOM_INIT, reference_run=run.id)
    assert torch.equal(torch.rand(3), draw)  # the caller's RNG stream is untouched
    assert got_cfg == cfg and not encoder.training
    for name, tensor in encoder.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name

    learned, _ = encoder_from_source(store, run.id)
    saved = run.load_encoder()
    assert all(torch.equal(t, saved[k]) for k, t in learned.model.state_dict().items())


def test_random_init_without_a_reference_uses_the_byol_paper_preset(store):
    encoder, cfg = encoder_from_source(store, RANDOM_INIT)
    assert cfg == get_preset("byol-paper")
    assert sum(p.numel() for p in encoder.parameters()) > 1_000_000  # a ResNet18


def test_unknown_runs_and_runs_without_an_encoder_are_explained(byol_run):
    store, run = byol_run
    with pytest.raises(FileNotFoundError, match=rf"no run 'nope'.*{RANDOM_INIT}"):
        compute_embeddings(store, "nope")
    with pytest.raises(FileNotFoundError, match="reference_run"):
        compute_embeddings(store, RANDOM_INIT, reference_run="nope")
    with pytest.raises(ValueError, match="not a run id"):
        encoder_from_source(store, "../runs")

    queued = store.create("byol", get_preset("tiny"))
    with pytest.raises(FileNotFoundError, match="no encoder yet.*finish"):
        compute_embeddings(store, queued.id)
    evaluation = store.create("evaluate", get_preset("tiny"), {"from_run": run.id})
    with pytest.raises(ValueError, match="'evaluate' run.*pretraining or supervised run"):
        encoder_from_source(store, evaluation.id)
    # A run of any kind can still serve as the reference of a random init.
    _, cfg = encoder_from_source(store, RANDOM_INIT, reference_run=evaluation.id)
    assert cfg == get_preset("tiny")


# --------------------------------------------------------------------------- kNN predictions per row
def test_knn_predict_set_lets_the_labelled_bank_vote_for_each_row():
    # Class 0 points along x, class 1 along y; row 2 is labelled 0 but sits on the y axis.
    es = EmbeddingSet(source="toy", features=np.array([[1, 0.1], [0.1, 1], [0, 2], [-1, 0.05]], np.float32),
                      labels=np.array([0, 1, 0, 0]), indices=np.array([7, 3, 5, 0]), classes=["x", "y", "z"])
    bank = np.array([[1, 0], [2, 0.1], [0, 1], [0.1, 3], [-1, 0], [5, 5]], np.float32)
    bank_labels = np.array([0, 0, 1, 1, 2, -1])  # the unlabelled bank row must not vote
    predicted = knn_predict_set(es, bank, bank_labels, k=1)
    assert predicted.dtype == np.int64 and predicted.tolist() == [0, 1, 1, 2]
    assert knn_predict_set(es, bank, bank_labels, k=2).tolist()[:3] == [0, 1, 1]
    with pytest.raises(ValueError, match="no labelled images"):
        knn_predict_set(es, bank, -np.ones(6, dtype=np.int64))
    with pytest.raises(ValueError, match="different encoders"):
        knn_predict_set(es, np.ones((3, 5), np.float32), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="6 labels"):
        knn_predict_set(es, bank[:4], bank_labels)


def test_set_predictions_follow_the_runs_knn_rule_and_are_cached(byol_run, monkeypatch):
    store, run = byol_run
    es = compute_embeddings(store, run.id, max_points=120)
    predicted = set_predictions(store, es)
    assert predicted.shape == (120,) and predicted.dtype == np.int64
    whole = knn_predictions(store, run.id)  # the error analysis: the whole test set, the same rule
    # The same images embedded in other batches may differ in the last bits; a near-tie vote may then flip.
    assert (predicted == whole.predicted[es.indices]).mean() >= 0.97
    accuracy = float((predicted == es.labels).mean())
    assert accuracy == pytest.approx(whole.accuracy, abs=0.15)  # 120 of the test images, the same encoder

    import byol_core.methods.evaluation as evaluation_module

    monkeypatch.setattr(evaluation_module, "embed", _fail)
    np.testing.assert_array_equal(set_predictions(store, es), predicted)  # from <runs>/_cache, no embedding
    assert len(list((store.root / "_cache").glob("predictions-*.npz"))) == 1
    monkeypatch.undo()

    random = compute_embeddings(store, RANDOM_INIT, reference_run=run.id, max_points=120)
    random_predicted = set_predictions(store, random, reference_run=run.id)
    assert random_predicted.shape == (120,) and set(random_predicted.tolist()) <= set(range(len(es.classes)))
    assert len(list((store.root / "_cache").glob("predictions-*.npz"))) == 2


# --------------------------------------------------------------------------- projections, scores, neighbours
def test_pca_2d_shape_determinism_and_edge_cases():
    feats, _ = _clusters()
    a, b = pca_2d(feats), pca_2d(feats.copy())
    assert a.shape == (len(feats), 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a[:, 0].var() >= a[:, 1].var()
    assert pca_2d(np.ones((1, 5))).shape == (1, 2)
    one_dim = pca_2d(np.arange(6, dtype=np.float32)[:, None])
    assert one_dim.shape == (6, 2) and np.all(one_dim[:, 1] == 0)
    with pytest.raises(ValueError, match="2-D"):
        pca_2d(np.zeros(4))


def test_nearest_neighbours_on_an_obvious_set():
    feats = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1], [-1, 0], [2, 0]], dtype=np.float32)
    # Cosine ignores length: point 5 is the same direction as point 0.
    assert nearest_neighbours(feats, 0, k=3).tolist() == [5, 1, 2]
    assert nearest_neighbours(feats, 3, k=1).tolist() == [2]
    assert nearest_neighbours(feats, 0, k=100).tolist() == [5, 1, 2, 3, 4]  # never itself, capped
    assert nearest_neighbours(feats, 0).dtype == np.int64
    with pytest.raises(IndexError):
        nearest_neighbours(feats, 6)


def test_neighbour_share_is_high_for_a_cluster_and_near_chance_for_a_random_group():
    feats, labels = _clusters(n_per=30)
    share, chance = neighbour_share(feats, np.flatnonzero(labels == 1), k=10)
    assert share == pytest.approx(1.0) and chance == pytest.approx(29 / 89)
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(400, 16)).astype(np.float32)
    group = rng.choice(400, 100, replace=False)
    share, chance = neighbour_share(noise, group, k=10, chunk=7)
    assert chance == pytest.approx(99 / 399) and abs(share - chance) < 0.08
    assert all(np.isnan(v) for v in neighbour_share(feats, [4]))
    with pytest.raises(ValueError, match="0..89"):
        neighbour_share(feats, [0, 90])
    with pytest.raises(ValueError, match="repeat"):
        neighbour_share(feats, [1, 1])


def test_separation_scores_tell_clusters_from_noise():
    feats, labels = _clusters(n_per=40)
    good = separation_scores(feats, labels, k=10)
    assert good["knn_accuracy"] == pytest.approx(1.0)
    assert good["silhouette"] > 0.5

    rng = np.random.default_rng(1)
    noise = rng.normal(size=(300, 16)).astype(np.float32)
    random_labels = rng.integers(0, 3, size=300)
    bad = separation_scores(noise, random_labels, k=10)
    assert abs(bad["knn_accuracy"] - 1 / 3) < 0.12
    assert abs(bad["silhouette"]) < 0.1

    # Unlabelled points are ignored; a single class cannot be scored.
    with_unlabelled = separation_scores(np.concatenate([feats, noise[:5]]),
                                        np.concatenate([labels, -np.ones(5, dtype=np.int64)]), k=10)
    assert with_unlabelled == pytest.approx(good)
    assert all(np.isnan(v) for v in separation_scores(feats, np.zeros(len(feats), dtype=np.int64)).values())


def test_leave_one_out_knn_predicts_each_point_from_all_the_others():
    rng = np.random.default_rng(2)
    x = torch.as_tensor(rng.normal(size=(40, 6)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 3, size=40))
    loo = knn_predict(x, y, x, k=5, num_classes=3, chunk=7, exclude_self=True)  # chunks cross the diagonal
    for i in range(len(x)):
        others = torch.arange(len(x)) != i
        assert loo[i] == knn_predict(x[others], y[others], x[i:i + 1], k=5, num_classes=3)[0], i
    with pytest.raises(ValueError, match="exclude_self"):
        knn_predict(x, y, x[:3], exclude_self=True)


def test_separation_scores_subsample_large_sets_for_the_silhouette(monkeypatch):
    import sklearn.metrics

    seen = []
    real = sklearn.metrics.silhouette_score
    monkeypatch.setattr(sklearn.metrics, "silhouette_score", lambda x, y, **kw: seen.append(len(x)) or real(x, y, **kw))
    feats, labels = _clusters(n_per=900, dim=8)
    scores = separation_scores(feats, labels, k=5)
    assert seen == [2000] and scores["silhouette"] > 0.5 and scores["knn_accuracy"] > 0.99


def test_keyed_futures_run_once_per_key_and_report_results():
    calls = []
    release = threading.Event()

    def fake_umap(features, **kwargs):
        calls.append(kwargs)
        release.wait(5)
        return np.asarray(features, dtype=np.float32)[:, :2] * 2

    jobs = KeyedFutures(max_workers=2)
    feats = np.arange(20, dtype=np.float32).reshape(10, 2)
    first = jobs.submit("a", fake_umap, feats, n_neighbors=5)
    assert jobs.submit("a", fake_umap, feats, n_neighbors=5) is first
    assert not first.done()
    release.set()
    np.testing.assert_array_equal(first.result(timeout=5), feats * 2)
    assert len(calls) == 1 and calls[0] == {"n_neighbors": 5} and first.exception() is None
    assert jobs.submit("a", fake_umap, feats) is first  # already done: nothing new
    assert len(calls) == 1
    jobs.shutdown()


def test_keyed_futures_keep_failures_until_forgotten():
    def broken_umap(features, **kwargs):
        raise RuntimeError("numba exploded")

    jobs = KeyedFutures()
    failed = jobs.submit("b", broken_umap, np.zeros((6, 3)))
    assert isinstance(failed.exception(timeout=5), RuntimeError) and str(failed.exception()) == "numba exploded"
    assert jobs.submit("b", lambda f: f, np.zeros((6, 3))) is failed  # not retried on every page rerun
    jobs.forget("b")
    retried = jobs.submit("b", lambda f, **kw: np.zeros((len(f), 2), dtype=np.float32), np.zeros((6, 3)))
    assert retried.result(timeout=5).shape == (6, 2)
    jobs.shutdown()


def test_forgetting_a_queued_key_cancels_its_work():
    release = threading.Event()
    jobs = KeyedFutures(max_workers=1)
    busy = jobs.submit("busy", release.wait, 5)
    queued = jobs.submit("queued", _fail)
    jobs.forget("queued")
    release.set()
    assert busy.result(timeout=5) is True
    with pytest.raises(CancelledError):
        queued.result(timeout=5)
    jobs.shutdown()


def test_warm_up_starts_one_thread_per_process(monkeypatch):
    started = threading.Event()
    monkeypatch.setattr(embeddings.warmup, "_thread", None)
    monkeypatch.setattr(embeddings.warmup, "_warm_up", started.set)  # the real one pays numba's compile
    assert not embeddings.umap_warm()
    first = embeddings.warm_up_umap()
    assert embeddings.warm_up_umap() is first and first.daemon
    first.join(5)
    assert started.is_set() and embeddings.umap_warm()


def test_tiny_sets_skip_umap(monkeypatch, tmp_path):
    monkeypatch.setattr(embeddings.projection, "umap_model", _fail)
    out = umap_2d(np.eye(3, dtype=np.float32), cache_dir=tmp_path)
    assert out.shape == (3, 2) and out.dtype == np.float32


@pytest.mark.slow
def test_real_umap_layout_and_its_disk_cache(tmp_path, monkeypatch):
    """Pays numba's compile (30-60 s on first use in a fresh environment)."""
    thread = embeddings.warm_up_umap()
    thread.join(300)
    assert embeddings.umap_warm() and embeddings.umap_warm_up_error() is None

    feats, labels = _clusters(n_per=40)
    layout = umap_2d(feats, n_neighbors=10, seed=0, cache_dir=tmp_path)
    assert layout.shape == (len(feats), 2) and layout.dtype == np.float32 and np.isfinite(layout).all()
    assert separation_scores(layout, labels, k=10)["knn_accuracy"] > 0.95  # clusters stay apart
    assert len(list(tmp_path.glob("umap-*.npz"))) == 1

    monkeypatch.setattr(embeddings.projection, "umap_model", _fail)
    np.testing.assert_array_equal(umap_2d(feats, n_neighbors=10, seed=0, cache_dir=tmp_path), layout)
    with pytest.raises(AssertionError, match="from the cache"):  # other parameters: a new layout
        umap_2d(feats, n_neighbors=11, seed=0, cache_dir=tmp_path)

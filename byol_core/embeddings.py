"""Embeddings of the test images for the dashboard's Embeddings page: compute, cache, project, score.

An encoder comes from a run (any run with an ``encoder.pt``) or is a random init of a
reference run's architecture (the baseline every learned encoder must beat). Embeddings
are cached on disk under ``<runs>/_cache/`` so a page reload, or a new process, does not
embed again. 2-D views: PCA (instant) and UMAP (seconds, plus a one-off numba compile of
30-60 s that :func:`warm_up_umap` moves into a background thread at start-up).
UMAP projections run in background threads through :class:`ProjectionJobs`.

Nothing here imports streamlit; everything is safe to call from several threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .config import ExperimentConfig, to_dict
from .data import load_data
from .evaluation import embed
from .models import Encoder, build_encoder
from .presets import get_preset
from .runs import Run, RunStore

__all__ = [
    "CACHE_DIRNAME",
    "DEFAULT_REFERENCE_PRESET",
    "RANDOM_INIT",
    "EmbeddingSet",
    "ProjectionJobs",
    "compute_embeddings",
    "embedding_cache_path",
    "encoder_from_source",
    "nearest_neighbours",
    "pca_2d",
    "separation_scores",
    "umap_2d",
    "umap_warm",
    "umap_warm_up_error",
    "warm_up_umap",
]

RANDOM_INIT = "random-init"
# A random init without a reference run uses this preset's architecture and data.
DEFAULT_REFERENCE_PRESET = "byol-paper"
CACHE_DIRNAME = "_cache"
# Every source embeds the same test images in the same order (for a given data config),
# so points of two encoders can be compared one to one.
SUBSET_SEED = 0
KNN_TEMPERATURE = 0.07  # as evaluation.knn_predict's default (Wu et al. 2018)
SILHOUETTE_MAX_POINTS = 2000
_CACHE_VERSION = 1  # bump when the cached file's content or layout changes


@dataclass
class EmbeddingSet:
    """Representations of a subset of ``splits.test``; row i is test image ``indices[i]``."""

    source: str  # run id or RANDOM_INIT
    features: np.ndarray  # float32 (N, D)
    labels: np.ndarray  # int64 (N,), -1 where the data set has no label
    indices: np.ndarray  # int64 (N,): positions in splits.test
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------- encoders
# torch's default CPU generator is process-wide; building under this lock and fork_rng keeps
# two builds from interleaving and leaves the caller's (e.g. a training thread's) RNG state as it was.
_RNG_LOCK = threading.Lock()


def _seeded_encoder(cfg: ExperimentConfig) -> Encoder:
    """``build_encoder`` with ``torch.manual_seed(cfg.seed)``: the same init runner.evaluate uses."""
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_encoder(cfg.model)


def _get_run(store: RunStore, run_id: str, role: str = "source") -> Run:
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise ValueError(f"{role} {run_id!r} is not a run id; pick a run from {store.root}/ "
                         f"or use {RANDOM_INIT!r}.")
    try:
        return store.get(run_id)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc} Pick an existing run as {role}, or use {RANDOM_INIT!r} "
                                "for a randomly initialised encoder.") from exc


def _reference_config(store: RunStore, reference_run: str | None) -> ExperimentConfig:
    if reference_run is None:
        return get_preset(DEFAULT_REFERENCE_PRESET)
    cfg, _, _ = _get_run(store, reference_run, role="reference_run").read_config()
    return cfg


def _run_with_encoder(store: RunStore, source: str) -> tuple[Run, ExperimentConfig]:
    run = _get_run(store, source)
    cfg, kind, _ = run.read_config()
    if not run.encoder_path.is_file():
        if kind in ("evaluate", "experiment"):
            raise ValueError(f"run {source} is an {kind!r} run, which has no encoder of its own; "
                             "choose a byol, supervised or linear run (or the run it evaluated).")
        state = run.read_status().get("state", "unknown")
        raise FileNotFoundError(f"run {source} ({kind}, {state}) has no encoder yet ({run.encoder_path}); "
                                "wait for it to finish, stop it (a stopped run exports its encoder) "
                                "or resume it.")
    return run, cfg


def encoder_from_source(store: RunStore, source: str,
                        reference_run: str | None = None) -> tuple[Encoder, ExperimentConfig]:
    """The encoder named by ``source`` (in eval mode, on the CPU) and the config it belongs to.

    ``source`` is a run id (any run with an ``encoder.pt``: byol, supervised, linear) or
    ``RANDOM_INIT``: the architecture and data of ``reference_run`` (or, when that is None, of
    the ``byol-paper`` preset) with random weights drawn after ``torch.manual_seed(cfg.seed)``,
    the same random init ``runner.evaluate`` scores. ``reference_run`` is ignored for runs.
    """
    if source == RANDOM_INIT:
        cfg = _reference_config(store, reference_run)
        encoder = _seeded_encoder(cfg)
    else:
        run, cfg = _run_with_encoder(store, source)
        state = run.load_encoder()
        encoder = _seeded_encoder(cfg)  # seeded only so building never disturbs anyone's RNG stream
        try:
            encoder.model.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"run {source}'s encoder.pt does not fit its config's model "
                             f"({cfg.model.backbone}): {exc}") from exc
    return encoder.eval(), cfg


# --------------------------------------------------------------------------- embeddings
def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz next to ``path`` and rename it into place: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_npz(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The named arrays of a cache file, or None when it is missing or unreadable (then recompute)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in names}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a damaged or outdated cache file is simply recomputed and replaced


def _sha1(payload: Any) -> str:
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _embedding_key(store: RunStore, source: str, reference_run: str | None,
                   max_points: int) -> tuple[str, ExperimentConfig]:
    """Cache key: the source and its weights, the data and preprocessing, and the subset size."""
    if source == RANDOM_INIT:
        cfg = _reference_config(store, reference_run)
        weights: Any = {"seed": cfg.seed, "torch": torch.__version__.split("+")[0]}
    else:
        run, cfg = _run_with_encoder(store, source)
        stat = run.encoder_path.stat()
        weights = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
    payload = {
        "version": _CACHE_VERSION,
        "source": source,
        "weights": weights,
        "model": to_dict(cfg.model),
        "data": to_dict(cfg.data),
        "image_size": cfg.augment.image_size,
        "max_points": max_points,
        "subset_seed": SUBSET_SEED,
    }
    return _sha1(payload), cfg


def embedding_cache_path(store: RunStore, source: str, *, reference_run: str | None = None,
                         max_points: int = 10_000) -> Path:
    """Where :func:`compute_embeddings` keeps (or would keep) this set."""
    key, _ = _embedding_key(store, source, reference_run, max_points)
    return store.root / CACHE_DIRNAME / f"embeddings-{key}.npz"


_KEY_LOCKS: dict[str, threading.Lock] = {}
_KEY_LOCKS_GUARD = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    """One lock per cache file: two threads asking for the same set compute it once."""
    with _KEY_LOCKS_GUARD:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


def _subset_indices(n: int, max_points: int) -> np.ndarray:
    """The first ``max_points`` of a fixed permutation: classes mixed, the same for every source."""
    order = np.random.default_rng(SUBSET_SEED).permutation(n)
    return order[:max_points].astype(np.int64)


_EMBEDDING_ARRAYS = ("features", "labels", "indices", "classes")


def compute_embeddings(store: RunStore, source: str, *, reference_run: str | None = None,
                       max_points: int = 10_000, device: torch.device | str = "cpu") -> EmbeddingSet:
    """Representations of up to ``max_points`` test images of the source's data set.

    The images are the first ``max_points`` of a fixed seeded permutation of ``splits.test``
    (so a smaller set is a prefix of a larger one, and every source sees the same images).
    Cached in ``store.root/_cache/embeddings-<sha1>.npz``, keyed by the source, its
    ``encoder.pt``'s mtime and size, model and data config, image size and ``max_points``;
    later calls, in this process or another, load that file.
    """
    if max_points < 1:
        raise ValueError(f"max_points = {max_points} must be at least 1.")
    key, cfg = _embedding_key(store, source, reference_run, max_points)
    path = store.root / CACHE_DIRNAME / f"embeddings-{key}.npz"
    with _key_lock(path.name):
        cached = _load_npz(path, _EMBEDDING_ARRAYS)
        if cached is not None:
            return EmbeddingSet(source=source, features=cached["features"].astype(np.float32, copy=False),
                                labels=cached["labels"].astype(np.int64, copy=False),
                                indices=cached["indices"].astype(np.int64, copy=False),
                                classes=[str(c) for c in cached["classes"]])
        encoder, cfg = encoder_from_source(store, source, reference_run)
        splits = load_data(cfg.data)
        indices = _subset_indices(len(splits.test), max_points)
        index = torch.from_numpy(indices)
        features = embed(encoder.to(device), splits.test.images[index], cfg.augment.image_size,
                         splits.mean, splits.std, cfg.eval.batch_size, device)
        result = EmbeddingSet(source=source, features=features.numpy().astype(np.float32, copy=False),
                              labels=splits.test.labels[index].numpy().astype(np.int64),
                              indices=indices, classes=list(splits.classes))
        _atomic_savez(path, features=result.features, labels=result.labels, indices=result.indices,
                      classes=np.asarray(result.classes, dtype=str))
        return result


# --------------------------------------------------------------------------- 2-D projections
def pca_2d(features: np.ndarray) -> np.ndarray:
    """The first two principal components (N, 2) float32; deterministic (signs fixed by svd_flip)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}.")
    n, d = x.shape
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2 or d == 0:
        return out
    from sklearn.decomposition import PCA

    k = min(2, n, d)
    # Both solvers are exact and have no random state; the covariance one is several times faster
    # for the usual tall sets (10k points x 512-2048 dims).
    solver = "covariance_eigh" if n > d else "full"
    out[:, :k] = PCA(n_components=k, svd_solver=solver).fit_transform(x)
    return out


def _features_digest(features: np.ndarray) -> str:
    x = np.ascontiguousarray(features, dtype=np.float32)
    h = hashlib.sha1(str(x.shape).encode())
    h.update(x.tobytes())
    return h.hexdigest()


def _umap_model(n_points: int, *, n_neighbors: int, min_dist: float, seed: int, metric: str,
                **extra: Any) -> Any:
    import umap  # slow import (numba): only when needed

    # A random_state makes UMAP deterministic and single-threaded (which suits a shared machine);
    # n_jobs=1 says so up front instead of UMAP warning that it overrides n_jobs.
    return umap.UMAP(n_components=2, n_neighbors=max(2, min(n_neighbors, n_points - 1)), min_dist=min_dist,
                     metric=metric, random_state=seed, n_jobs=1, **extra)


def umap_2d(features: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
            metric: str = "cosine", cache_dir: Path | None = None) -> np.ndarray:
    """A UMAP layout (N, 2) float32 of ``features``, seeded, on cosine distance by default.

    With ``cache_dir`` the layout is kept in ``umap-<sha1>.npz`` keyed by the features' bytes
    and the parameters. Sets too small for UMAP (under 5 points) fall back to :func:`pca_2d`.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}.")
    path = None
    if cache_dir is not None:
        params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "seed": seed, "metric": metric,
                  "version": _CACHE_VERSION}
        path = Path(cache_dir) / f"umap-{_sha1([_features_digest(x), params])}.npz"
        cached = _load_npz(path, ("layout",))
        if cached is not None:
            return cached["layout"].astype(np.float32, copy=False)
    if len(x) < 5:
        layout = pca_2d(x)
    else:
        model = _umap_model(len(x), n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, metric=metric)
        layout = np.asarray(model.fit_transform(x), dtype=np.float32)
    if path is not None:
        _atomic_savez(path, layout=layout)
    return layout


_WARM_LOCK = threading.Lock()
_warm_thread: threading.Thread | None = None
_warm_error: str | None = None


def _warm_up() -> None:
    global _warm_error
    try:
        x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
        # Both of UMAP's neighbour searches: exact below 4096 points, pynndescent from there on
        # (the dashboard's usual sizes); the same metric and seeding as umap_2d.
        for approximate in (False, True):
            _umap_model(len(x), n_neighbors=5, min_dist=0.1, seed=0, metric="cosine", n_epochs=10,
                        force_approximation_algorithm=approximate).fit_transform(x)
    except Exception as exc:  # noqa: BLE001 - a background warm-up must never crash; the error is kept
        _warm_error = f"{type(exc).__name__}: {exc}"


def warm_up_umap() -> threading.Thread:
    """Start (once per process) a daemon thread that pays numba's 30-60 s UMAP compile up front.

    Idempotent: later calls return the same thread. See :func:`umap_warm`.
    """
    global _warm_thread
    with _WARM_LOCK:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_warm_up, name="umap-warm-up", daemon=True)
            _warm_thread.start()
        return _warm_thread


def umap_warm() -> bool:
    """Whether the warm-up has run to its end (False before :func:`warm_up_umap` is called).

    True also when the warm-up failed (:func:`umap_warm_up_error` says why): then a real
    projection reports the same problem as its own error instead of the page waiting forever.
    """
    thread = _warm_thread
    return thread is not None and not thread.is_alive()


def umap_warm_up_error() -> str | None:
    """Why the warm-up failed, or None."""
    return _warm_error


# --------------------------------------------------------------------------- scores and neighbours
def _normalised(features: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {tuple(x.shape)}.")
    return F.normalize(x, dim=1)


def _loo_knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int, temperature: float,
                      chunk: int = 1024) -> float:
    """Leave-one-out weighted kNN (cosine, votes ``exp(sim / T)``) on the set itself."""
    x = _normalised(features)
    y = torch.as_tensor(labels, dtype=torch.long)
    n = len(x)
    k = min(k, n - 1)
    num_classes = int(y.max()) + 1
    correct = 0
    for start in range(0, n, chunk):
        sims = x[start:start + chunk] @ x.T
        rows = torch.arange(len(sims))
        sims[rows, rows + start] = -float("inf")  # leave the point itself out
        top, idx = sims.topk(k, dim=1)
        votes = torch.zeros(len(sims), num_classes)
        votes.scatter_add_(1, y[idx], (top / temperature).exp())
        correct += int((votes.argmax(1) == y[start:start + chunk]).sum())
    return correct / n


def separation_scores(features: np.ndarray, labels: np.ndarray, k: int = 20,
                      temperature: float = KNN_TEMPERATURE) -> dict[str, float]:
    """How well the classes separate: leave-one-out kNN accuracy and the cosine silhouette.

    Points labelled -1 are ignored. A score that cannot be computed (fewer than two labelled
    classes, or too few points) is NaN. The silhouette uses at most 2000 points (seeded subsample).
    """
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if len(features) != len(labels):
        raise ValueError(f"features ({len(features)}) and labels ({len(labels)}) differ in length.")
    keep = labels >= 0
    features, labels = features[keep], labels[keep]
    scores = {"knn_accuracy": float("nan"), "silhouette": float("nan")}
    n_classes = len(np.unique(labels))
    if len(labels) < 2 or n_classes < 2:
        return scores
    scores["knn_accuracy"] = _loo_knn_accuracy(features, labels, k, temperature)
    if len(labels) > SILHOUETTE_MAX_POINTS:
        pick = np.random.default_rng(SUBSET_SEED).choice(len(labels), SILHOUETTE_MAX_POINTS, replace=False)
        features, labels = features[pick], labels[pick]
    if 2 <= len(np.unique(labels)) <= len(labels) - 1:
        from sklearn.metrics import silhouette_score

        scores["silhouette"] = float(silhouette_score(features, labels, metric="cosine"))
    return scores


def nearest_neighbours(features: np.ndarray, index: int, k: int = 8) -> np.ndarray:
    """Indices (int64) of the ``k`` points most cosine-similar to point ``index``, most similar first.

    The point itself is excluded; ties go to the lower index, so the answer is deterministic.
    """
    x = _normalised(features)
    n = len(x)
    if not -n <= index < n:
        raise IndexError(f"index {index} is out of range for {n} points.")
    index %= n
    sims = (x @ x[index]).numpy().astype(np.float64)
    sims[index] = -np.inf
    order = np.argsort(-sims, kind="stable")
    return order[:max(0, min(k, n - 1))].astype(np.int64)


# --------------------------------------------------------------------------- background projections
@dataclass
class _Job:
    status: str = "running"
    result: np.ndarray | None = None
    error: str | None = None
    thread: threading.Thread | None = None


class ProjectionJobs:
    """Thread-safe registry of background UMAP projections (one daemon thread each), keyed by a string.

    The dashboard reruns its script often; :meth:`request` on every rerun is cheap and starts
    the work only once per key. A failed key stays failed (so a rerun does not retry in a loop)
    until :meth:`forget` clears it.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def request(self, key: str, features: np.ndarray, **umap_kwargs: Any) -> None:
        """Start projecting ``features`` with :func:`umap_2d` under ``key`` unless that key is known."""
        with self._lock:
            if key in self._jobs:
                return
            job = _Job()
            # A private copy: the caller may reuse or change its array while the thread runs.
            data = np.array(features, dtype=np.float32, copy=True)
            job.thread = threading.Thread(target=self._work, args=(job, data, umap_kwargs),
                                          name=f"umap-{key}"[:60], daemon=True)
            self._jobs[key] = job
            job.thread.start()

    @staticmethod
    def _work(job: _Job, features: np.ndarray, umap_kwargs: dict[str, Any]) -> None:
        try:
            result = umap_2d(features, **umap_kwargs)  # looked up at call time, so tests can replace it
        except Exception as exc:  # noqa: BLE001 - any failure is reported through status()/error()
            job.error = f"{type(exc).__name__}: {exc}"
            job.status = "failed"
        else:
            job.result = result
            job.status = "done"

    def status(self, key: str) -> str:
        """'missing' | 'running' | 'done' | 'failed'."""
        with self._lock:
            job = self._jobs.get(key)
        return "missing" if job is None else job.status

    def result(self, key: str) -> np.ndarray | None:
        """The (N, 2) layout once done, else None."""
        with self._lock:
            job = self._jobs.get(key)
        return None if job is None else job.result

    def error(self, key: str) -> str | None:
        """'ExceptionType: message' of a failed projection, else None."""
        with self._lock:
            job = self._jobs.get(key)
        return None if job is None else job.error

    def wait(self, key: str, timeout: float | None = None) -> str:
        """Block until the key's projection ends or ``timeout`` passes; returns its status."""
        with self._lock:
            job = self._jobs.get(key)
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        return self.status(key)

    def forget(self, key: str) -> None:
        """Drop a key (e.g. to retry a failed projection); a running thread finishes unobserved."""
        with self._lock:
            self._jobs.pop(key, None)

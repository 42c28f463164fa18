"""UMAP's one-off numba compile (30-60 s) paid once per process in a background thread."""

from __future__ import annotations

import threading

import numpy as np

from .projection import umap_model

_LOCK = threading.Lock()
_thread: threading.Thread | None = None
_error: str | None = None


def _warm_up() -> None:
    global _error
    try:
        x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
        # Both of UMAP's neighbour searches: exact below 4096 points, pynndescent from there on
        # (the dashboard's usual sizes); the same metric and seeding as umap_2d.
        for approximate in (False, True):
            umap_model(len(x), n_neighbors=5, min_dist=0.1, seed=0, metric="cosine", n_epochs=10,
                       force_approximation_algorithm=approximate).fit_transform(x)
    except Exception as exc:  # noqa: BLE001 - a background warm-up must never crash; the error is kept
        _error = f"{type(exc).__name__}: {exc}"


def warm_up_umap() -> threading.Thread:
    """Start (once per process) a daemon thread that pays numba's 30-60 s UMAP compile up front.

    Idempotent: later calls return the same thread. See :func:`umap_warm`.
    """
    global _thread
    with _LOCK:
        if _thread is None:
            _thread = threading.Thread(target=_warm_up, name="umap-warm-up", daemon=True)
            _thread.start()
        return _thread


def umap_warm() -> bool:
    """Whether the warm-up has run to its end (False before :func:`warm_up_umap` is called).

    True also when the warm-up failed (:func:`umap_warm_up_error` says why): then a real
    projection reports the same problem as its own error instead of the page waiting forever.
    """
    thread = _thread
    return thread is not None and not thread.is_alive()


def umap_warm_up_error() -> str | None:
    """Why the warm-up failed, or None."""
    return _error

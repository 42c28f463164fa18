"""Each embedded test image's predicted class under its encoder, by the rule of the run's kNN accuracy.

The labelled training images, embedded by the same encoder, vote for each row of an
:class:`EmbeddingSet` (weighted kNN on cosine similarity, the config's ``eval.knn_k`` and
``eval.knn_temperature``). A random init is scored the same way on its own features. The
predictions are cached on disk beside the embeddings, so the training images are embedded once.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ...data import load_data
from ...lab.run_store import RunStore
from ...methods.evaluation import knn_predict, knn_vote
from ..error_analysis import require_class_labels
from .cache import CACHE_DIRNAME, CACHE_VERSION, content_key, file_lock, load_npz, save_npz
from .scores import KNN_TEMPERATURE
from .sets import EmbeddingSet, cache_key
from .sources import encoder_from_source


def knn_predict_set(es: EmbeddingSet, bank_features: np.ndarray, bank_labels: np.ndarray, *, k: int = 20,
                    temperature: float = KNN_TEMPERATURE) -> np.ndarray:
    """Predicted class (int64, one per row of ``es``, aligned with ``es.indices``): the bank's weighted-kNN vote.

    Bank rows labelled -1 do not vote. ``es.features`` and the bank must come from the same encoder.
    """
    bank = np.asarray(bank_features, dtype=np.float32)
    labels = np.asarray(bank_labels, dtype=np.int64)
    if bank.ndim != 2 or len(bank) != len(labels):
        raise ValueError(f"the bank needs features (N, D) and N labels; got features {bank.shape} and "
                         f"{len(labels)} labels.")
    keep = labels >= 0
    if not keep.any():
        raise ValueError("the bank has no labelled images to vote with.")
    if len(es) and es.features.shape[1] != bank.shape[1]:
        raise ValueError(f"the set's features are {es.features.shape[1]}-d but the bank's are {bank.shape[1]}-d: "
                         "they come from different encoders.")
    num_classes = max(len(es.classes), int(labels.max()) + 1)
    predicted = knn_predict(torch.from_numpy(bank[keep]), torch.from_numpy(labels[keep]),
                            torch.from_numpy(np.asarray(es.features, dtype=np.float32)), k=k,
                            temperature=temperature, num_classes=num_classes)
    return predicted.numpy().astype(np.int64)


def set_predictions(store: RunStore, es: EmbeddingSet, *, reference_run: str | None = None) -> np.ndarray:
    """The kNN prediction of each row of ``es`` (int64, aligned with ``es.indices``) under ``es.source``.

    ``es`` comes from :func:`compute_embeddings` with the same ``store`` and ``reference_run``. The
    labelled training images are embedded by that encoder and vote, exactly as the run's kNN accuracy
    was scored. Cached in ``<runs>/_cache/predictions-<sha1>.npz`` (keyed by the encoder's weights, the
    data, the rows and the kNN settings). Raises ValueError when the data set has no class labels.
    """
    set_key, cfg = cache_key(store, es.source, reference_run, len(es), "test" if es.parts is None else "all")
    rows_digest = hashlib.sha1(np.ascontiguousarray(es.indices, dtype=np.int64).tobytes()).hexdigest()
    key = content_key({"version": CACHE_VERSION, "set": set_key, "rows": rows_digest, "k": cfg.eval.knn_k,
                       "temperature": cfg.eval.knn_temperature, "bank": "labelled_train"})
    path = store.root / CACHE_DIRNAME / f"predictions-{key}.npz"
    with file_lock(path.name):
        cached = load_npz(path, ("predicted",))
        if cached is not None and len(cached["predicted"]) == len(es):
            return cached["predicted"].astype(np.int64, copy=False)
        encoder, cfg = encoder_from_source(store, es.source, reference_run)
        splits = load_data(cfg.data)
        require_class_labels(splits)
        features = torch.from_numpy(np.asarray(es.features, dtype=np.float32))
        predicted = knn_vote(encoder, splits, cfg, features).numpy().astype(np.int64)
        save_npz(path, predicted=predicted)
        return predicted

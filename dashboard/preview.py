"""The Data page's augmentation preview: which images it shows, drawn fast on a busy 2-core machine.

The images are chosen here once (:func:`preview_sample`) and their indices travel with them, so the page's
Python snippet rebuilds the very images and views shown.

``byol_core.augment.views.preview`` works on 8 small images: dozens of tiny tensor ops. With torch's
default of one OpenMP thread per core, each op splits across both cores and waits for the slower
one; when training (or anything else) keeps a core busy, that wait dominates and a preview takes
seconds instead of tens of milliseconds (see benchmarks/preview_latency.py). So previews run in
one long-lived worker thread limited to a single intra-op thread. torch's thread count is
per-thread under OpenMP, so training threads keep theirs.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import streamlit as st
import torch

from byol_core.augment.views import preview
from byol_core.config import AugmentConfig, DataConfig, from_json, to_json
from byol_core.data import load_data

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _executor_once() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            before = torch.get_num_threads()
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="byol-preview",
                                          initializer=torch.set_num_threads, initargs=(1,))
            executor.submit(lambda: None).result()  # start the worker now, so its setting is made
            torch.set_num_threads(before)  # new threads (e.g. training jobs) get the usual default again
            _executor = executor
        return _executor


def run_preview(images: torch.Tensor, cfg: AugmentConfig,
                seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``preview(images, cfg, seed)`` on the single-threaded preview worker."""
    return _executor_once().submit(preview, images, cfg, seed).result()


@dataclass(frozen=True)
class PreviewSample:
    """The training images the preview shows: their indices in ``splits.train``, the images, their class names."""

    indices: tuple[int, ...]
    images: torch.Tensor  # uint8 (B, C, H, W), read-only: shared by every session
    names: tuple[str, ...]


def preview_indices(labels: torch.Tensor, num_classes: int, count: int) -> list[int]:
    """``count`` training indices, ascending: the first image of each class (so the grid shows the variety),
    then the earliest others."""
    chosen: list[int] = []
    for c in range(max(num_classes, 0)):
        hits = torch.nonzero(labels == c).flatten()
        if len(hits) and len(chosen) < count:
            chosen.append(int(hits[0]))
    taken = set(chosen)
    for i in range(len(labels)):
        if len(chosen) >= count:
            break
        if i not in taken:
            chosen.append(i)
    return sorted(chosen)


@st.cache_resource(show_spinner=False, max_entries=16)
def _sample(cfg_json: str, count: int) -> PreviewSample:
    splits = load_data(from_json(cfg_json, DataConfig))
    labels = splits.train.labels
    indices = preview_indices(labels, splits.num_classes, count)
    names = tuple(splits.classes[int(labels[i])] if int(labels[i]) >= 0 and splits.classes else "" for i in indices)
    return PreviewSample(tuple(indices), splits.train.images[indices].clone(), names)


def preview_sample(cfg: DataConfig, count: int = 8) -> PreviewSample:
    """The ``count`` training images of ``cfg``'s data the preview shows (cached per data set)."""
    return _sample(to_json(cfg), count)

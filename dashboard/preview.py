"""The Data page's augmentation preview, kept fast on a busy 2-core machine.

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

import torch

from byol_core.augment.views import preview
from byol_core.config import AugmentConfig

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

"""Background work keyed by a string: one ``concurrent.futures.Future`` per key, submitted once.

The dashboard reruns its script often; submitting on every rerun is cheap and starts the work only
once per key. A finished future, failed ones included, stays until :meth:`KeyedFutures.forget`, so
a rerun never retries a failure in a loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class KeyedFutures:
    """A thread pool that runs each key's work once and hands out its future; thread-safe.

    The pool's threads are not daemons: at interpreter exit Python waits for their work to end
    (call :meth:`shutdown` first to drop work not yet started).
    """

    def __init__(self, max_workers: int = 2, name: str = "keyed") -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """The future of ``key``: the existing one, or ``fn(*args, **kwargs)`` newly started in the pool."""
        with self._lock:
            future = self._futures.get(key)
            if future is None:
                future = self._futures[key] = self._pool.submit(fn, *args, **kwargs)
            return future

    def get(self, key: str) -> Future | None:
        """The future of ``key`` when one was submitted (and not forgotten), else None."""
        with self._lock:
            return self._futures.get(key)

    def forget(self, key: str) -> None:
        """Drop ``key`` (e.g. to retry a failure); work not yet started is cancelled, running work ends unobserved."""
        with self._lock:
            future = self._futures.pop(key, None)
        if future is not None:
            future.cancel()

    def shutdown(self) -> None:
        """Cancel what has not started; running work finishes in the background."""
        self._pool.shutdown(wait=False, cancel_futures=True)



class ProgressBoard:
    """How far each key's background work has got, ``(done, total)``; thread-safe.

    The work reports with the callable from :meth:`reporter`; the page reads :meth:`get` on each rerun.
    """

    def __init__(self) -> None:
        self._progress: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def reporter(self, key: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callable that records under ``key``."""
        def report(done: int, total: int) -> None:
            with self._lock:
                self._progress[key] = (int(done), int(total))
        return report

    def get(self, key: str) -> tuple[int, int] | None:
        """``(done, total)`` last reported under ``key``, or None before the first report."""
        with self._lock:
            return self._progress.get(key)

"""Plotly figures kept between page runs: one built figure per distinct input.

Plotly validates every property as a figure is built (20-100 ms a chart on 2 busy cores, more for a scatter of
thousands of points), and a page's rerun or reload mostly draws the same charts from the same numbers. So a
figure builder decorated with :func:`memo_figure` builds once per distinct input (its arguments, pickled and
hashed) and hands back the same figure object after that. Callers pass it to ``st.plotly_chart`` as it is,
which copies it before sending: a kept figure must never be changed in place.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

Builder = TypeVar("Builder", bound=Callable[..., Any])

KEPT_FIGURES = 32  # a few pages' charts, for several sessions at once (a 20k-point scatter is a few MB)
_LOCK = threading.Lock()
_KEPT: OrderedDict[bytes, Any] = OrderedDict()


def _input_key(name: str, args: tuple, kwargs: dict) -> bytes | None:
    """A digest of the builder's name and its arguments; None when they cannot be pickled (then no memo)."""
    try:
        data = pickle.dumps((name, args, sorted(kwargs.items())), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    return hashlib.blake2b(data, digest_size=20).digest()


def memo_figure(build: Builder) -> Builder:
    """``build`` run once per distinct input; later calls with equal inputs return the figure already built."""
    name = f"{build.__module__}.{build.__qualname__}"

    @functools.wraps(build)
    def kept(*args: Any, **kwargs: Any) -> Any:
        key = _input_key(name, args, kwargs)
        if key is not None:
            with _LOCK:
                if key in _KEPT:
                    _KEPT.move_to_end(key)
                    return _KEPT[key]
        figure = build(*args, **kwargs)
        if key is not None:
            with _LOCK:
                _KEPT[key] = figure
                while len(_KEPT) > KEPT_FIGURES:
                    _KEPT.popitem(last=False)
        return figure

    return kept  # type: ignore[return-value]

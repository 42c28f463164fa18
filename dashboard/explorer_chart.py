"""The Embeddings page's scatter with filters: the rows that pass drawn as ``charts.embedding_scatter`` draws all,
the rest as one grey, unselectable trace underneath, so a filter keeps the map's shape in view.

Every drawn point's customdata stays its row in the whole set, so clicks and lassos mean the same rows
with or without a filter. Past :data:`DRAW_MAX` points a seeded sample is drawn (a browser redraws 100k
WebGL points in seconds on 2 cores, 20k in a fraction of that); a lasso or box still selects every point
inside it (``selection.rows_in_region``), and filters, exports and scores use all points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from dashboard import charts
from dashboard.figure_memo import memo_figure

FILTERED_OUT = "filtered out"
GREY = "rgba(156,163,175,0.25)"
DRAW_MAX = 20_000  # points drawn in colour at most (a seeded sample beyond)
BACKGROUND_MAX = 10_000  # grey filtered-out points drawn at most: context only
# How the scatters are drawn. plotly renders WebGL at twice the page's pixels by default; in a browser
# without a GPU (software WebGL) every filter or lasso, which redraws both plots from new canvases, costs
# four times the pixels: at 1 a filter at 100,000 points answered in about 0.6 of the time
# (benchmarks/explorer_points.py). Markers of a few pixels look the same.
PLOT_CONFIG = {"displayModeBar": False, "scrollZoom": True, "plotGlPixelRatio": 1}


def _sample(rows: np.ndarray, limit: int, keep: np.ndarray | None = None) -> np.ndarray:
    """``rows`` (sorted) when there are at most ``limit``, else a seeded sorted sample of ``limit`` plus ``keep``."""
    if len(rows) <= limit:
        return rows
    sample = np.random.default_rng(0).choice(rows, limit, replace=False)
    return np.unique(np.concatenate([sample, [] if keep is None else keep]).astype(np.int64))


def drawn_rows(n_points: int, shown: np.ndarray | None, keep: Sequence[int] | None = None) -> np.ndarray:
    """The rows drawn in colour: those shown (all when None), or a seeded sample of :data:`DRAW_MAX` of them
    that also holds the ``keep`` rows among them (the clicked point and its marked neighbours)."""
    rows = np.arange(n_points) if shown is None else np.unique(np.asarray(shown, dtype=np.int64))
    wanted = np.asarray([] if keep is None else keep, dtype=np.int64)
    return _sample(rows, DRAW_MAX, wanted[np.isin(wanted, rows)])


def _positions(rows: Sequence[int] | np.ndarray | None, shown: np.ndarray) -> np.ndarray | None:
    """Where ``rows`` sit among the sorted ``shown`` rows; rows not shown are dropped."""
    if rows is None:
        return None
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    at = np.searchsorted(shown, rows)
    inside = (at < len(shown)) & (shown[np.minimum(at, len(shown) - 1)] == rows) if len(shown) else rows < 0
    return at[inside]


@memo_figure
def filtered_scatter(xy: np.ndarray, labels: np.ndarray, classes: Sequence[str], shown: np.ndarray | None, *,
                     selected: int | None = None, highlight: Sequence[int] | None = None,
                     marked: Sequence[int] | None = None, dragmode: str | None = None,
                     colour_by: np.ndarray | None = None, colours: dict[str, str] | None = None,
                     height: int = 460) -> go.Figure:
    """``charts.embedding_scatter`` of the rows in ``shown`` (None: all) over a grey trace of the others."""
    xy, labels = np.asarray(xy), np.asarray(labels)
    if shown is None and len(xy) <= DRAW_MAX:
        return charts.embedding_scatter(xy, labels, classes, selected=selected, highlight=highlight, marked=marked,
                                        dragmode=dragmode, colour_by=colour_by, colours=colours, height=height)
    rest = np.setdiff1d(np.arange(len(xy)), shown) if shown is not None else np.zeros(0, dtype=np.int64)
    shown = drawn_rows(len(xy), shown, [*([] if selected is None else [selected]), *(marked or [])])
    pick = _positions(None if selected is None else [selected], shown)
    fig = charts.embedding_scatter(
        xy[shown], labels[shown], classes, selected=int(pick[0]) if pick is not None and len(pick) else None,
        highlight=_positions(highlight, shown), marked=_positions(marked, shown), dragmode=dragmode,
        colour_by=None if colour_by is None else np.asarray(colour_by)[shown], colours=colours, height=height)
    for trace in fig.data:  # back from positions among the shown rows to rows of the whole set
        if trace.customdata is not None and len(trace.customdata):
            trace.customdata = shown[np.asarray(trace.customdata, dtype=np.int64)]
    if not len(rest):
        return fig
    rest = _sample(rest, BACKGROUND_MAX)
    # No customdata: a lasso over grey points selects nothing (rows_from_event skips such points).
    grey = charts.scatter_trace(len(rest))(x=xy[rest, 0], y=xy[rest, 1], mode="markers", name=FILTERED_OUT, hoverinfo="skip",
                        marker={"size": 4, "color": GREY})
    return go.Figure(data=[grey, *fig.data], layout=fig.layout)

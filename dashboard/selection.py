"""Selections on the Embeddings page's plots, as plain data: which rows a plot event chose, what they hold.

Pure functions (no streamlit): the page turns a plotly selection event into rows of the embedding
set, keeps them under a key naming the images they index, and summarises them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from byol_core.config import DataConfig, to_json


def data_key(data: DataConfig, n_points: int) -> str:
    """What a row number means: row i is the same test image in every set of ``n_points`` from ``data``."""
    return f"{to_json(data)}|{n_points}"


def rows_from_event(event: Mapping[str, Any] | None) -> list[int]:
    """The rows chosen by a plotly selection event as Streamlit delivers it, each once, ascending.

    ``event``: ``{"selection": {"points": [{"customdata": row or [row, ...], "point_index": i, ...}],
    "box": [...], "lasso": [...]}}``. Each point's row is its customdata (``point_index`` counts within
    its trace, so it is not a row); points without one are skipped. Overlay traces repeat rows, hence
    each once. Anything else (None, an empty selection) gives [].
    """
    selection = (event or {}).get("selection") or {}
    rows: set[int] = set()
    for point in selection.get("points") or []:
        custom = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        if isinstance(custom, (int, float, np.integer, np.floating)) and not isinstance(custom, bool):
            rows.add(int(custom))
    return sorted(rows)


def record(state: MutableMapping[str, Any], rows: Sequence[int], key: str, *, pick_key: str,
           selection_key: str) -> None:
    """Keep what a plot event chose in ``state`` (e.g. st.session_state), for images named ``key``.

    One row (a click, or a lasso around one point) becomes the pick, ``(key, row)``, and ends any group
    selection; several become the group selection, ``(key, rows)``, and end the pick; none (plotly's
    deselect: a double click, or a click while lassoing) ends the group selection and keeps the pick.
    """
    if len(rows) == 1:
        state[pick_key] = (key, int(rows[0]))
        state.pop(selection_key, None)
    elif rows:
        state[selection_key] = (key, tuple(int(r) for r in rows))
        state.pop(pick_key, None)
    else:
        state.pop(selection_key, None)


def applies(stored: Any, key: str, n_points: int) -> list[int] | None:
    """The rows of a stored ``(data key, rows)`` selection if it was made on images named ``key``, else None.

    Rows outside ``0..n_points-1`` are dropped (a stale selection never indexes past the set).
    """
    if not isinstance(stored, (tuple, list)) or len(stored) != 2 or stored[0] != key:
        return None
    rows = [int(r) for r in stored[1] if 0 <= int(r) < n_points]
    return rows or None


def class_mix(labels: np.ndarray, classes: Sequence[str], rows: Sequence[int],
              correct: Mapping[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """One row per class present among ``rows``: its name, image count and share, most frequent first.

    ``correct``: per encoder name, a bool per point (its prediction is right); adds a column
    ``"correct · <name>"`` with the class's count of right predictions among the chosen rows.
    """
    chosen = np.asarray(rows, dtype=np.int64)
    picked = np.asarray(labels)[chosen]
    values, counts = np.unique(picked, return_counts=True)
    order = np.lexsort((values, -counts))  # most frequent first, ties by class number
    table = []
    for i in order:
        c = int(values[i])
        row: dict[str, Any] = {"class": classes[c] if 0 <= c < len(classes) else ("unlabelled" if c < 0 else str(c)),
                               "images": int(counts[i]), "share": float(counts[i]) / len(chosen)}
        for name, right in (correct or {}).items():
            row[f"correct · {name}"] = int(np.asarray(right)[chosen][picked == c].sum())
        table.append(row)
    return table


def other_class(labels: np.ndarray, selected: int, neighbours: Sequence[int]) -> list[int]:
    """The neighbours whose class differs from the selected point's, in the given order."""
    own = int(labels[selected])
    return [int(r) for r in neighbours if int(labels[r]) != own]


def correct_counts(right: np.ndarray, rows: Sequence[int] | None = None) -> tuple[int, int]:
    """(right, wrong) predictions among ``rows`` (all points when None)."""
    values = np.asarray(right, dtype=bool)
    if rows is not None:
        values = values[np.asarray(rows, dtype=np.int64)]
    hits = int(values.sum())
    return hits, len(values) - hits


def _inside_polygon(xy: np.ndarray, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """A bool per point: inside the closed polygon (even-odd rule, by ray casting along +x)."""
    px, py = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    x, y = xy[:, 0].astype(np.float64), xy[:, 1].astype(np.float64)
    inside = np.zeros(len(xy), dtype=bool)
    for i in range(len(px)):
        x1, y1, x2, y2 = px[i - 1], py[i - 1], px[i], py[i]
        if y1 == y2:
            continue  # a horizontal edge never crosses the ray
        crosses = (y1 > y) != (y2 > y)
        at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < at)
    return inside


def rows_in_region(event: Mapping[str, Any] | None, xy: np.ndarray, candidates: np.ndarray | None = None) -> list[int]:
    """Every row whose 2-D point lies in the event's box or lasso, ascending; a click's rows when it has neither.

    A plot that draws a sample of many points sends only the drawn points it selected; the region itself
    selects all of them. ``candidates``: the rows that may be chosen (those passing the filters; None: all).
    """
    chosen = (event or {}).get("selection") or {}
    regions = [("box", r) for r in chosen.get("box") or []] + [("lasso", r) for r in chosen.get("lasso") or []]
    if not regions:
        return rows_from_event(event)
    points = np.asarray(xy, dtype=np.float64)
    pool = np.arange(len(points)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    hit = np.zeros(len(pool), dtype=bool)
    for kind, region in regions:
        xs, ys = region.get("x") or [], region.get("y") or []
        if kind == "box" and len(xs) >= 2 and len(ys) >= 2:
            (x0, x1), (y0, y1) = sorted(xs[:2]), sorted(ys[:2])
            sub = points[pool]
            hit |= (sub[:, 0] >= x0) & (sub[:, 0] <= x1) & (sub[:, 1] >= y0) & (sub[:, 1] <= y1)
        elif kind == "lasso" and len(xs) >= 3 and len(xs) == len(ys):
            hit |= _inside_polygon(points[pool], xs, ys)
    return sorted(int(r) for r in pool[hit])

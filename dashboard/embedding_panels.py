"""The Embeddings page's panels: each encoder's plot with its scores and the clicked image's neighbours, and
a box or lasso selection's images and class mix.

The page (``views/embeddings.py``) reads its controls and prepares one :class:`EncoderPlot` per chosen
encoder with :func:`prepare`; the panels take those and the controls' values as arguments. A click and a
box or lasso selection live in ``st.session_state`` (:data:`PICK_KEY`, :data:`SELECTION_KEY`) under the key
of the images they index (:func:`dashboard.selection.data_key`), so they apply to both plots at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from byol_core.analysis.embeddings import (
    CACHE_DIRNAME,
    RANDOM_INIT,
    UMAP_MIN_POINTS,
    EmbeddingSet,
    KeyedFutures,
    compute_embeddings,
    embedding_cache_path,
    nearest_neighbours,
    neighbour_share,
    pca_2d,
    reference_config,
    separation_scores,
    set_predictions,
    umap_2d,
    umap_warm,
)
from byol_core.config import DataConfig
from byol_core.lab.run_store import RunStore
from byol_core.lab.summary import RunSummary
from byol_core.text import markdown_text
from dashboard import charts, images, selection, state

NEIGHBOURS = 8
THUMB_PX = 48
SELECTED_PX = 96
GRID_PX = 56
GRID_MAX = 64  # images shown of a box or lasso selection
GRID_COLUMNS = 8
SHARE_K = 10  # neighbours per image when scoring how tightly a selection sits together
PICK_KEY = "emb.pick"  # (data key, row) of the clicked test image, shared by both plots
SELECTION_KEY = "emb.selection"  # (data key, rows) of a box or lasso selection, shared by both plots
PLOT_GEN_KEY = "emb.plot_gen"  # bumped by "Clear selection": fresh plot widgets drop plotly's own selection
CORRECT_COLOURS = {"correct": "#16a34a", "incorrect": "#dc2626"}
OTHER_CLASS_RED = (220, 38, 38)


@dataclass(frozen=True)
class EncoderPlot:
    """One encoder's embedding of the test images, with what its plot needs."""

    source: str                  # a run id, or RANDOM_INIT
    label: str                   # its name on the page, as plain text (Markdown gets markdown_text(label))
    short: str                   # its column-sized name: "random init" or the run's method
    es: EmbeddingSet
    cache_path: str              # byol_core's cache path of the set: the key of every result cached from it
    data: DataConfig             # the data set whose test images the rows index
    umap: Future | None          # the background UMAP layout, when one is wanted
    right: np.ndarray | None     # whether each row's kNN prediction is its class; None when not scored

    @property
    def data_key(self) -> str:
        return selection.data_key(self.data, len(self.es))

    def class_name(self, row: int) -> str:
        c = int(self.es.labels[row])
        return self.es.classes[c] if 0 <= c < len(self.es.classes) else "?"

    def test_images(self, rows: Sequence[int] | np.ndarray) -> torch.Tensor:
        """The test images of ``rows`` of the set."""
        index = torch.as_tensor(self.es.indices[np.asarray(rows, dtype=np.int64)], dtype=torch.long)
        return state.load_splits(self.data).test.images[index]


def encoder_label(source: str, runs: Mapping[str, RunSummary]) -> str:
    """An encoder's name in the selects and above its plot; anything else (the "none" choice) as it is."""
    if source == RANDOM_INIT:
        return "random init (untrained network)"
    info = runs.get(source)
    return info.short() if info else source


# ---------------------------------------------------------------------------- cached work
# Keyed by byol_core's own cache path, which changes when the encoder's weights do; the set itself
# (an underscore argument) is not hashed.
@st.cache_resource(show_spinner=False, max_entries=8)
def _embedding(cache_path: str, root: str, source: str, ref: str | None, n: int) -> EmbeddingSet:
    return compute_embeddings(RunStore(root), source, reference_run=ref, max_points=n)


@st.cache_data(show_spinner=False, max_entries=16)
def _scores(cache_path: str, _es: EmbeddingSet) -> dict[str, float]:
    return separation_scores(_es.features, _es.labels)


@st.cache_data(show_spinner=False, max_entries=16)
def _predicted(cache_path: str, root: str, ref: str | None, _es: EmbeddingSet) -> np.ndarray:
    return set_predictions(RunStore(root), _es, reference_run=ref)


@st.cache_data(show_spinner=False, max_entries=16)
def _pca(cache_path: str, _es: EmbeddingSet) -> np.ndarray:
    return pca_2d(_es.features)


def prepare(store: RunStore, projections: KeyedFutures, source: str, runs: Mapping[str, RunSummary], *,
            reference: str | None, max_points: int, umap: bool, score: bool) -> EncoderPlot | None:
    """Embed ``max_points`` test images with ``source``; None (and an error shown) when that fails.

    ``runs``: the encoders by run id; ``reference``: the run whose network and data a random init uses.
    ``umap``: start the UMAP layout in the background (``projections``); ``score``: kNN-score every row.
    """
    label = encoder_label(source, runs)
    shown = markdown_text(label)  # a run's name is text a person wrote: no Markdown in it comes alive
    ref = reference if source == RANDOM_INIT else None
    with state.user_errors(f"{shown}: "):
        path = str(embedding_cache_path(store, source, reference_run=ref, max_points=max_points))
        with st.spinner(f"Embedding test images with {shown}…"):
            es = _embedding(path, str(store.root), source, ref, max_points)
        cfg = reference_config(store, reference) if source == RANDOM_INIT else runs[source].config
        layout = None
        if umap and len(es) >= UMAP_MIN_POINTS:
            layout = projections.submit(f"{Path(path).name}|umap", umap_2d, es.features,
                                        cache_dir=store.root / CACHE_DIRNAME)
        short = "random init" if source == RANDOM_INIT else (runs[source].method if source in runs else source)
        right = _right(store, label, path, ref, es) if score else None
        return EncoderPlot(source=source, label=label, short=short, es=es, cache_path=path, data=cfg.data,
                           umap=layout, right=right)
    return None


def _right(store: RunStore, label: str, path: str, ref: str | None, es: EmbeddingSet) -> np.ndarray | None:
    """Whether each row's kNN prediction is its class; None (and an error shown) when it cannot be scored."""
    shown = markdown_text(label)
    with (state.user_errors(f"{shown}: cannot colour by correct / incorrect: "),
          st.spinner(f"kNN-scoring the test images under {shown} (embeds the labelled training images once)…")):
        return _predicted(path, str(store.root), ref, es) == es.labels
    return None


def umap_running(plots: Sequence[EncoderPlot]) -> bool:
    return any(p.umap is not None and not p.umap.done() for p in plots)


def short_names(plots: Sequence[EncoderPlot]) -> list[str]:
    """Column-sized encoder names: "random init" or the run's method; run ids where two methods coincide."""
    names = [p.short for p in plots]
    return names if len(set(names)) == len(names) else ["random init" if p.source == RANDOM_INIT else p.source
                                                        for p in plots]


# ---------------------------------------------------------------------------- clicks and selections
def _picked(key: str, data_key: str) -> None:
    """A click (one point) opens the neighbour view; a box or lasso (several) the selection view."""
    selection.record(st.session_state, selection.rows_from_event(st.session_state.get(key)), data_key,
                     pick_key=PICK_KEY, selection_key=SELECTION_KEY)


def _clear() -> None:
    st.session_state.pop(PICK_KEY, None)
    st.session_state.pop(SELECTION_KEY, None)
    st.session_state[PLOT_GEN_KEY] = st.session_state.get(PLOT_GEN_KEY, 0) + 1


def clear_button() -> None:
    st.button("Clear selection", key="emb.clear", on_click=_clear, icon=":material/close:")


def selected_in(plots: Sequence[EncoderPlot]) -> list[tuple[EncoderPlot, list[int]]]:
    """The plots the stored box or lasso selection applies to (those of the same images), with its rows."""
    stored = st.session_state.get(SELECTION_KEY)
    return [(p, rows) for p in plots if (rows := selection.applies(stored, p.data_key, len(p.es))) is not None]


# ---------------------------------------------------------------------------- one encoder's column
def _layout(plot: EncoderPlot) -> tuple[np.ndarray, str]:
    """The 2-D points: UMAP's when it is done, else PCA's, with a note saying why PCA shows ("" when none)."""
    if plot.umap is not None:
        if not plot.umap.done():
            return _pca(plot.cache_path, plot.es), (
                "UMAP is computing in the background" +
                ("" if umap_warm() else " (its one-off compile is still warming up)") + "; showing PCA meanwhile.")
        if (error := plot.umap.exception()) is not None:
            return _pca(plot.cache_path, plot.es), f"UMAP failed ({type(error).__name__}: {error}); showing PCA."
        return np.asarray(plot.umap.result()), ""
    return _pca(plot.cache_path, plot.es), ""


def _metrics(plot: EncoderPlot) -> None:
    scores = _scores(plot.cache_path, plot.es)
    m1, m2 = st.columns(2)
    knn, sil = scores.get("knn_accuracy"), scores.get("silhouette")
    m1.metric("Leave-one-out kNN among these test images",
              "–" if knn is None or math.isnan(knn) else f"{100 * knn:.1f}%",
              help="Share of the embedded test images whose 20 nearest neighbours among the others (cosine) vote for "
                   "their own class. Not the run's kNN accuracy in the encoder list, which classifies the whole test "
                   "set from the labelled training images.")
    m2.metric("Silhouette", "–" if sil is None or math.isnan(sil) else f"{sil:.3f}",
              help="From -1 to 1: how much closer points are to their own class than to the next one.")


def show_column(plot: EncoderPlot, side: str, *, layout: str, dragmode: str) -> None:
    """An encoder's scores, its scatter plot (``layout``: the chosen "UMAP" or "PCA"; ``dragmode``: plotly's
    for the mouse mode), and under it the selection's placement or the clicked image's neighbours."""
    es = plot.es
    st.markdown(f"**{markdown_text(plot.label)}**")
    _metrics(plot)
    xy, note = _layout(plot)
    pick = st.session_state.get(PICK_KEY)
    selected = pick[1] if pick and pick[0] == plot.data_key and 0 <= pick[1] < len(es) else None
    chosen = selection.applies(st.session_state.get(SELECTION_KEY), plot.data_key, len(es))
    neighbours = nearest_neighbours(es.features, selected, k=NEIGHBOURS) if selected is not None else None
    others = selection.other_class(es.labels, selected, neighbours) if neighbours is not None else None
    generation = st.session_state.get(PLOT_GEN_KEY, 0)
    key = f"emb.plot.{side}" + (f".{generation}" if generation else "")
    fig = charts.embedding_scatter(
        xy, es.labels, es.classes, selected=selected, highlight=chosen, marked=others, dragmode=dragmode,
        colour_by=None if plot.right is None else np.where(plot.right, "correct", "incorrect"),
        colours=CORRECT_COLOURS)
    st.plotly_chart(fig, key=key, on_select=lambda: _picked(key, plot.data_key),
                    selection_mode=("points", "box", "lasso"), config={"displayModeBar": False, "scrollZoom": True})
    caption = (f"{len(es)} test images · {'UMAP' if note == '' and layout == 'UMAP' else 'PCA'}"
               f" of {es.features.shape[1]}-d features. {note}")
    if plot.right is not None:
        hits, misses = selection.correct_counts(plot.right)
        caption += (f" kNN from the labelled training images gets {100 * hits / max(len(plot.right), 1):.1f}% of "
                    f"them right ({hits} correct, {misses} incorrect).")
    st.caption(caption)
    if chosen is not None and len(chosen) > 1:
        share, chance = neighbour_share(es.features, chosen, k=SHARE_K)
        st.markdown(f"**Selection under this encoder:** {100 * share:.0f}% of the {SHARE_K} nearest neighbours of "
                    f"the {len(chosen)} selected images are selected too (chance: {100 * chance:.0f}%).",
                    help="How tightly the encoder keeps these images together, in its full feature space "
                         "(cosine), not in the 2-D picture. Far above chance: it sees them as a group.")
        return
    if selected is None:
        st.caption("Click a point to see the image and its nearest neighbours." if dragmode == "pan"
                   else "Drag a lasso around points to select them (a lasso around one point shows its neighbours).")
        return
    show_neighbours(plot, selected, neighbours, set(others))


def show_neighbours(plot: EncoderPlot, selected: int, neighbours: np.ndarray, others: set[int]) -> None:
    """The clicked image and its nearest neighbours; those of another class framed in red and marked ≠."""
    big = images.thumbnails(plot.test_images([selected]), SELECTED_PX)[0]
    small = images.thumbnails(plot.test_images(neighbours), THUMB_PX)
    same = len(neighbours) - len(others)
    name = markdown_text(plot.class_name(selected))  # class names are folder names a person chose
    st.markdown(f"Selected: class **{name}** · {same}/{len(neighbours)} nearest neighbours "
                "share its class" + (f" · :red[{len(others)} of another class (≠, framed red; red diamonds on the "
                                     "plot)]" if others else ""))
    left, right = st.columns([1, 4], vertical_alignment="top")
    left.image(big, caption=f"selected: {name}", width=SELECTED_PX)
    right.image([images.framed(t, OTHER_CLASS_RED) if r in others else t
                 for t, r in zip(small, neighbours, strict=True)],
                caption=[("≠ " if r in others else "") + markdown_text(plot.class_name(r)) for r in neighbours],
                width=THUMB_PX)


# ---------------------------------------------------------------------------- a box or lasso selection
def show_selection(chosen: Sequence[tuple[EncoderPlot, list[int]]]) -> None:
    """A box or lasso selection: its images, its class mix and, when scored, how many each encoder gets right."""
    plot, rows = chosen[0]
    es = plot.es
    head, button = st.columns([5, 1], vertical_alignment="bottom")
    head.subheader(f"Selection: {len(rows)} test images")
    with button:
        clear_button()
    scored = [p for p, _ in chosen if p.right is not None]
    right = dict(zip(short_names(scored), [p.right for p in scored], strict=True))
    counts = {int(c): int(n) for c, n in zip(*np.unique(es.labels[rows], return_counts=True), strict=True)}
    table_col, grid_col = st.columns([2, 3], gap="large")
    with table_col:
        st.markdown("**Class mix**")
        st.dataframe(selection.class_mix(es.labels, es.classes, rows, right), hide_index=True,
                     column_config={"share": st.column_config.ProgressColumn("share", format="percent", min_value=0,
                                                                             max_value=1)})
        for name, ok in right.items():
            hits, misses = selection.correct_counts(ok, rows)
            st.caption(f"kNN under {name}: {hits} correct, {misses} incorrect ({100 * hits / len(rows):.0f}% right).")
    with grid_col:
        # Rows are a seeded random order of the test set, so the first GRID_MAX are a fair sample.
        shown = rows[:GRID_MAX]
        first_right = next(iter(right.values()), None)
        note = f" (showing {len(shown)} of {len(rows)})" if len(shown) < len(rows) else ""
        if first_right is not None:
            note += f"; framed red: kNN under {next(iter(right))} gets it wrong"
        st.markdown(f"**Images** by class{note}")
        for c in sorted(counts, key=lambda c: (-counts[c], c)):  # the class mix's order
            group = [r for r in shown if int(es.labels[r]) == c]
            if not group:
                continue
            thumbs = images.thumbnails(plot.test_images(group), GRID_PX)
            if first_right is not None:
                thumbs = [t if first_right[r] else images.framed(t, OTHER_CLASS_RED)
                          for t, r in zip(thumbs, group, strict=True)]
            count = f"{len(group)} of {counts[c]} shown" if len(group) < counts[c] else f"{counts[c]} images"
            st.image(images.grid(thumbs, per_row=GRID_COLUMNS),
                     caption=f"{markdown_text(plot.class_name(group[0]))} · {count}")


# ---------------------------------------------------------------------------- the plots together
def show_plots(plots: Sequence[EncoderPlot], *, layout: str, dragmode: str, polling: bool) -> None:
    """The plots side by side, then the selection they share; ``polling``: the page reruns this until UMAP is done."""
    if not plots:
        return
    cols = st.columns(len(plots), gap="large")
    for col, plot, side in zip(cols, plots, ("a", "b"), strict=False):
        with col, state.user_errors():
            show_column(plot, side, layout=layout, dragmode=dragmode)
    if chosen := selected_in(plots):
        with state.user_errors():
            show_selection(chosen)
    elif PICK_KEY in st.session_state or SELECTION_KEY in st.session_state:
        clear_button()
    if polling and not umap_running(plots):
        st.rerun()  # UMAP is done: a full rerun redraws and stops the polling

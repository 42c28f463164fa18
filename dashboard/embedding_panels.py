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
    ProgressBoard,
    compute_embeddings,
    embedding_cache_path,
    gather_images,
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
from dashboard import embedding_words as words
from dashboard import explorer_chart, images, selection, state

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
# Sets up to this size are embedded while the page waits (seconds); bigger ones in the background, with progress.
WAIT_MAX_POINTS = 10_000


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
    predicted: np.ndarray | None = None  # each row's kNN-predicted class; None when not scored
    summary: RunSummary | None = None    # the run of the encoder (None: a random init); its headline is the accuracy

    @property
    def data_key(self) -> str:
        return selection.data_key(self.data, len(self.es))

    def class_name(self, row: int) -> str:
        c = int(self.es.labels[row])
        return self.es.classes[c] if 0 <= c < len(self.es.classes) else "?"

    def test_images(self, rows: Sequence[int] | np.ndarray) -> torch.Tensor:
        """The images of ``rows`` of the set (test images, or any part of the collection)."""
        chosen = np.asarray(rows, dtype=np.int64)
        return gather_images(state.load_splits(self.data), self.es.part_codes()[chosen], self.es.indices[chosen])


@dataclass(frozen=True)
class Pending:
    """A set still being embedded in the background: whose, how far, or why it failed."""

    label: str
    key: str  # the set's cache path: its key in background_embedding()
    done: int
    total: int
    error: str | None = None

    def finished(self) -> bool:
        """Whether the background job has ended (then a rerun shows the set, or its error)."""
        future = background_embedding()[0].get(self.key)
        return future is None or future.done()

    def progress(self) -> tuple[int, int]:
        return background_embedding()[1].get(self.key) or (self.done, self.total)


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
def _embedding(cache_path: str, root: str, source: str, ref: str | None, n: int, scope: str = "test") -> EmbeddingSet:
    return compute_embeddings(RunStore(root), source, reference_run=ref, max_points=n, scope=scope)


@st.cache_resource(show_spinner=False)
def background_embedding() -> tuple[KeyedFutures, ProgressBoard]:
    """The server's one embedding worker (one at a time: it shares 2 cores with training) and its progress."""
    return KeyedFutures(max_workers=1, name="embed"), ProgressBoard()


def _embed_in_background(cache_path: str, root: str, source: str, ref: str | None, n: int,
                         scope: str) -> Future:
    jobs, board = background_embedding()

    def work() -> None:
        # Writes byol_core's cache file and returns nothing: the page then loads the file once
        # (``_embedding``), so the finished future holds no copy of a 100k-row set.
        es = compute_embeddings(RunStore(root), source, reference_run=ref, max_points=n, scope=scope,
                                progress=board.reporter(cache_path))
        pca_2d(es.features, cache_dir=Path(root) / CACHE_DIRNAME)  # the first layout, ready when the page looks

    return jobs.submit(cache_path, work)


@st.cache_data(show_spinner=False, max_entries=16)
def _scores(cache_path: str, _es: EmbeddingSet) -> dict[str, float]:
    return separation_scores(_es.features, _es.labels)


@st.cache_data(show_spinner=False, max_entries=16)
def _predicted(cache_path: str, root: str, ref: str | None, _es: EmbeddingSet) -> np.ndarray:
    return set_predictions(RunStore(root), _es, reference_run=ref)


@st.cache_data(show_spinner=False, max_entries=16)
def _pca(cache_path: str, _es: EmbeddingSet) -> np.ndarray:
    # Big sets' layouts are cached on disk beside their embeddings (computed by the background job).
    big = len(_es) > WAIT_MAX_POINTS
    return pca_2d(_es.features, cache_dir=Path(cache_path).parent if big else None)


def prepare(store: RunStore, projections: KeyedFutures, source: str, runs: Mapping[str, RunSummary], *,
            reference: str | None, max_points: int, umap: bool, score: bool,
            scope: str = "test") -> EncoderPlot | Pending | None:
    """Embed ``max_points`` images (``scope``: "test" or "all") with ``source``; None (and an error shown) on failure.

    ``runs``: the encoders by run id; ``reference``: the run whose network and data a random init uses.
    ``umap``: start the UMAP layout in the background (``projections``); ``score``: kNN-score every row.
    A set over :data:`WAIT_MAX_POINTS` not yet on disk is embedded in the background: a :class:`Pending` says how far.
    """
    label = encoder_label(source, runs)
    shown = markdown_text(label)  # a run's name is text a person wrote: no Markdown in it comes alive
    ref = reference if source == RANDOM_INIT else None
    with state.user_errors(f"{shown}: "):
        path = str(embedding_cache_path(store, source, reference_run=ref, max_points=max_points, scope=scope))
        if max_points > WAIT_MAX_POINTS and not Path(path).is_file():
            job = _embed_in_background(path, str(store.root), source, ref, max_points, scope)
            if not job.done() or job.exception() is not None:
                done, total = background_embedding()[1].get(path) or (0, max_points)
                error = job.exception() if job.done() else None
                return Pending(label, path, done, total, None if error is None else f"{type(error).__name__}: {error}")
        with st.spinner(f"Embedding images with {shown}…"):
            es = _embedding(path, str(store.root), source, ref, max_points, scope)
        cfg = reference_config(store, reference) if source == RANDOM_INIT else runs[source].config
        layout = None
        if umap and len(es) >= UMAP_MIN_POINTS:
            layout = projections.submit(f"{Path(path).name}|umap", umap_2d, es.features,
                                        cache_dir=store.root / CACHE_DIRNAME)
        short = "random init" if source == RANDOM_INIT else (runs[source].method if source in runs else source)
        predicted = _predictions(store, label, path, ref, es) if score else None
        return EncoderPlot(source=source, label=label, short=short, es=es, cache_path=path, data=cfg.data,
                           umap=layout, right=None if predicted is None else predicted == es.labels,
                           predicted=predicted, summary=runs.get(source))
    return None


def _predictions(store: RunStore, label: str, path: str, ref: str | None, es: EmbeddingSet) -> np.ndarray | None:
    """Each row's kNN-predicted class; None (and an error shown) when it cannot be scored."""
    shown = markdown_text(label)
    with (state.user_errors(f"{shown}: cannot colour by correct / incorrect: "),
          st.spinner(f"kNN-scoring the images under {shown} (embeds the labelled training images once)…")):
        return _predicted(path, str(store.root), ref, es)
    return None


def umap_running(plots: Sequence[EncoderPlot | Pending]) -> bool:
    return any(isinstance(p, EncoderPlot) and p.umap is not None and not p.umap.done() for p in plots)


def short_names(plots: Sequence[EncoderPlot]) -> list[str]:
    """Column-sized encoder names: "random init" or the run's method; run ids where two methods coincide."""
    names = [p.short for p in plots]
    return names if len(set(names)) == len(names) else ["random init" if p.source == RANDOM_INIT else p.source
                                                        for p in plots]


# ---------------------------------------------------------------------------- clicks and selections
def _picked(key: str, data_key: str, xy: np.ndarray | None = None, shown: np.ndarray | None = None) -> None:
    """A click (one point) opens the neighbour view; a box or lasso (several) the selection view.

    With ``xy`` (a plot that draws a sample of its points) a box or lasso selects every point inside it
    among ``shown`` (the filtered rows; None: all), not only the drawn ones."""
    event = st.session_state.get(key)
    rows = selection.rows_from_event(event) if xy is None else selection.rows_in_region(event, xy, shown)
    selection.record(st.session_state, rows, data_key, pick_key=PICK_KEY, selection_key=SELECTION_KEY)


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
def layout_of(plot: EncoderPlot) -> tuple[np.ndarray, str]:
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
    """The encoder's one accuracy (its run's headline), then the two separation scores of the shown images."""
    scores = _scores(plot.cache_path, plot.es)
    m1, m2, m3 = st.columns(3)
    value, about = words.accuracy(plot.summary)
    m1.metric(words.ACCURACY_LABEL, value, help=about)
    value, about = words.separation(scores.get("knn_accuracy"))
    m2.metric(words.SEPARATION_LABEL, value, help=about)
    sil = scores.get("silhouette")
    m3.metric("Silhouette", "–" if sil is None or math.isnan(sil) else f"{sil:.3f}",
              help="From -1 to 1: how much closer points are to their own class than to the next one.")
    st.caption(f"{words.SEPARATION_LABEL}: {words.SEPARATION_WORDS}.")


def show_column(plot: EncoderPlot, side: str, *, layout: str, dragmode: str, shown: np.ndarray | None = None) -> None:
    """An encoder's scores, its scatter plot (``layout``: the chosen "UMAP" or "PCA"; ``dragmode``: plotly's
    for the mouse mode; ``shown``: the rows that pass the filters, None for all), and under it the selection's
    placement or the clicked image's neighbours."""
    es = plot.es
    st.markdown(f"**{markdown_text(plot.label)}**")
    _metrics(plot)
    xy, note = layout_of(plot)
    pick = st.session_state.get(PICK_KEY)
    selected = pick[1] if pick and pick[0] == plot.data_key and 0 <= pick[1] < len(es) else None
    chosen = selection.applies(st.session_state.get(SELECTION_KEY), plot.data_key, len(es))
    neighbours = nearest_neighbours(es.features, selected, k=NEIGHBOURS) if selected is not None else None
    others = selection.other_class(es.labels, selected, neighbours) if neighbours is not None else None
    generation = st.session_state.get(PLOT_GEN_KEY, 0)
    key = f"emb.plot.{side}" + (f".{generation}" if generation else "")
    fig = explorer_chart.filtered_scatter(
        xy, es.labels, es.classes, shown, selected=selected, highlight=chosen, marked=others, dragmode=dragmode,
        colour_by=None if plot.right is None else np.where(es.labels < 0, "unlabelled",
                                                           np.where(plot.right, "correct", "incorrect")),
        colours=CORRECT_COLOURS)
    sampled = len(explorer_chart.drawn_rows(len(es), shown)) < (len(es) if shown is None else len(shown))
    region = (xy, shown) if sampled else (None, None)
    st.plotly_chart(fig, key=key, on_select=lambda: _picked(key, plot.data_key, *region),
                    selection_mode=("points", "box", "lasso"), config=explorer_chart.PLOT_CONFIG)
    kind = "test images" if es.parts is None else "images"
    count = f"{len(es)} {kind}" if shown is None else f"{len(shown)} of {len(es)} {kind} pass the filters"
    drawn = "UMAP" if note == "" and layout == "UMAP" else "PCA"
    caption = f"{count} · {drawn} of {es.features.shape[1]}-d features. {note}"
    if sampled:
        caption += (f" Drawing a random {explorer_chart.DRAW_MAX:,} of them to keep the page quick; a lasso or box "
                    "selects every point inside it, and the filters and exports use all.")
    if plot.right is not None:
        labelled = np.flatnonzero(es.labels >= 0) if shown is None else shown[es.labels[shown] >= 0]
        hits, misses = selection.correct_counts(plot.right, labelled)
        caption += " " + words.knn_caption(hits, misses, scored_rows=kind if shown is None else "filtered " + kind)
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
        labelled = [r for r in rows if es.labels[r] >= 0]
        for name, ok in right.items():
            st.caption(words.selection_knn_caption(name, *selection.correct_counts(ok, labelled)))
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
def show_plots(plots: Sequence[EncoderPlot], *, layout: str, dragmode: str, shown: np.ndarray | None = None) -> None:
    """The plots side by side, then the selection they share.

    ``shown``: the rows that pass the explorer's filters (None: all), the same rows in every plot."""
    if not plots:
        return
    cols = st.columns(len(plots), gap="large")
    for col, plot, side in zip(cols, plots, ("a", "b"), strict=False):
        with col, state.user_errors():
            # The filters' rows are rows of the first plot's images; a plot of other images shows all of its own.
            same = plot.data_key == plots[0].data_key
            show_column(plot, side, layout=layout, dragmode=dragmode, shown=shown if same else None)
    if chosen := selected_in(plots):
        with state.user_errors():
            show_selection(chosen)
    elif PICK_KEY in st.session_state or SELECTION_KEY in st.session_state:
        clear_button()

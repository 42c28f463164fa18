"""Embeddings: where an encoder puts the test images, in 2-D, coloured by class or by whether kNN gets them right.

A good encoder puts images of one class together even though BYOL never saw a label. Pick one or two
encoders (a run's, or a random init of the same network); PCA shows at once, UMAP follows from a
background thread. Click a point to see its image and its nearest neighbours under each encoder; drag a
lasso (or a box) around several to see their images, their classes, and how each encoder places them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from byol_core.analysis.embeddings import (
    CACHE_DIRNAME,
    RANDOM_INIT,
    UMAP_MIN_POINTS,
    EmbeddingSet,
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
from byol_core.config import ExperimentConfig
from byol_core.lab.summary import list_summaries
from dashboard import charts, images, selection, state

NONE = "— none —"
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
BY_CLASS, BY_CORRECT = "true class", "correct / incorrect"
# Plotly dragmode per mouse mode. Streamlit turns plotly's click-to-select off while the dragmode is
# lasso or box (a click then clears the selection), so clicking one point needs a mode of its own.
MOUSE_MODES = {"click a point": "pan", "lasso a group": "lasso"}
CORRECT_COLOURS = {"correct": "#16a34a", "incorrect": "#dc2626"}
OTHER_CLASS_RED = (220, 38, 38)

manager = state.get_manager()
store = manager.store
projections = state.get_projections()
# Pretrained encoders first (newest first), then supervised ones: the default view is a BYOL encoder.
encoders = sorted([s for s in list_summaries(store) if s.usable_encoder and not s.archived],
                  key=lambda s: not (s.stage_info and s.stage_info.pretraining))
by_id = {s.id: s for s in encoders}

st.title("Embeddings")
st.markdown(
    "Each dot is a test image, placed by the encoder's features (squeezed to 2-D) and coloured by its "
    "**true class**, which BYOL never saw. Tight, separate colours mean the features already know the classes; "
    "compare a trained encoder with a **random init** of the same network. Click a dot to see the image and its "
    "nearest neighbours; switch the mouse to **lasso a group** and drag around several dots to see their images "
    "and classes."
)


def _label(source: str) -> str:
    if source == RANDOM_INIT:
        return "random init (untrained network)"
    if source == NONE:
        return NONE
    info = by_id.get(source)
    return info.short() if info else source


options = [i.id for i in encoders] + [RANDOM_INIT]
c1, c2, c3 = st.columns([2, 2, 1])
source_a = c1.selectbox("Encoder", options, index=0, format_func=_label, key="emb.a")
options_b = [NONE, *[o for o in options if o != source_a]]
source_b = c2.selectbox("Side by side with", options_b, format_func=_label, key="emb.b",
                        index=options_b.index(RANDOM_INIT) if RANDOM_INIT in options_b else 0)
first_run = next((by_id[s] for s in (source_a, source_b) if s in by_id), encoders[0] if encoders else None)
n_test = first_run.results.get("test_images") if first_run is not None else None
top = int(min(10_000, n_test)) if isinstance(n_test, int) and n_test >= 50 else 10_000  # never more than there are
max_points = c3.slider("Test images", min_value=min(50, top), max_value=top, value=min(1000, top), step=1 if top < 500
                       else 50, key=f"emb.n.{top}", help="How many test images to embed (the same images for both "
                                                          "encoders)." + (f" The test set has {n_test}." if n_test
                                                                          else ""))
l1, l2, l3 = st.columns(3)
layout_choice = l1.radio("Layout", ["UMAP", "PCA"], horizontal=True, key="emb.layout",
                         help="PCA is instant and linear; UMAP (computed in the background) keeps neighbourhoods "
                              "and usually shows clusters better.")
colour_choice = l2.radio("Colour by", [BY_CLASS, BY_CORRECT], horizontal=True, key="emb.colour",
                         help="Correct / incorrect: whether the encoder's kNN prediction is the image's class, with "
                              "the labelled training images voting (the rule of the run's kNN accuracy; a random "
                              "init is scored the same way on its own features).")
mouse_choice = l3.radio("Mouse on the plots", list(MOUSE_MODES), horizontal=True, key="emb.mouse",
                        help="Click a point: its image and nearest neighbours (a drag pans). Lasso a group: drag "
                             "around points to select them all (a click clears the selection).")
if not encoders:
    st.info("No trained encoder yet: this shows a random init. Train BYOL on the **Train** page to compare.",
            icon=":material/info:")

sources = [s for s in (source_a, source_b) if s != NONE]
runs_chosen = [s for s in sources if s != RANDOM_INIT]
reference = runs_chosen[0] if runs_chosen else (encoders[0].id if encoders else None)
if RANDOM_INIT in sources:
    st.caption(f"The random init uses the network and data of run `{reference}`." if reference else
               "The random init uses the byol-paper preset's network (ResNet18) on digits.")


def _config_of(source: str) -> ExperimentConfig:
    return reference_config(store, reference) if source == RANDOM_INIT else by_id[source].config


@st.cache_resource(show_spinner=False, max_entries=8)
def _embedding(cache_path: str, root: str, source: str, ref: str | None, n: int) -> EmbeddingSet:
    # Keyed by byol_core's own cache path, which changes when the encoder's weights do.
    from byol_core.lab.run_store import RunStore

    return compute_embeddings(RunStore(root), source, reference_run=ref, max_points=n)


@st.cache_data(show_spinner=False, max_entries=16)
def _scores(cache_path: str, _es: EmbeddingSet) -> dict[str, float]:
    return separation_scores(_es.features, _es.labels)


@st.cache_data(show_spinner=False, max_entries=16)
def _predicted(cache_path: str, root: str, ref: str | None, _es: EmbeddingSet) -> np.ndarray:
    from byol_core.lab.run_store import RunStore

    return set_predictions(RunStore(root), _es, reference_run=ref)


@st.cache_data(show_spinner=False, max_entries=16)
def _pca(cache_path: str, _es: EmbeddingSet) -> np.ndarray:
    return pca_2d(_es.features)


def _prepare(source: str) -> dict[str, Any] | None:
    ref = reference if source == RANDOM_INIT else None
    with state.user_errors(f"{_label(source)}: "):
        path = str(embedding_cache_path(store, source, reference_run=ref, max_points=int(max_points)))
        with st.spinner(f"Embedding test images with {_label(source)}…"):
            es = _embedding(path, str(store.root), source, ref, int(max_points))
        cfg = _config_of(source)
        umap = None  # the background UMAP layout's future, when one is wanted
        if layout_choice == "UMAP" and len(es) >= UMAP_MIN_POINTS:
            umap = projections.submit(f"{Path(path).name}|umap", umap_2d, es.features,
                                      cache_dir=store.root / CACHE_DIRNAME)
        return {"source": source, "es": es, "path": path, "cfg": cfg,
                "data_key": selection.data_key(cfg.data, len(es)), "umap": umap,
                "right": _right(source, path, ref, es) if colour_choice == BY_CORRECT else None}
    return None


def _right(source: str, path: str, ref: str | None, es: EmbeddingSet) -> np.ndarray | None:
    """Whether each row's kNN prediction is its class; None (and an error shown) when it cannot be scored."""
    with (state.user_errors(f"{_label(source)}: cannot colour by correct / incorrect: "),
          st.spinner(f"kNN-scoring the test images under {_label(source)} (embeds the labelled training images "
                     "once)…")):
        return _predicted(path, str(store.root), ref, es) == es.labels
    return None


def _short_names(sources: list[str]) -> list[str]:
    """Column-sized encoder names: "random init" or the run's method; run ids where two methods coincide."""
    names = ["random init" if s == RANDOM_INIT else (by_id[s].method if s in by_id else s) for s in sources]
    return names if len(set(names)) == len(names) else ["random init" if s == RANDOM_INIT else s for s in sources]


def _umap_running(items: list[dict[str, Any]]) -> bool:
    return any(item["umap"] is not None and not item["umap"].done() for item in items)


prepared = [p for p in (_prepare(s) for s in sources) if p is not None]
polling = _umap_running(prepared)


def _picked(key: str, data_key: str) -> None:
    """A click (one point) opens the neighbour view; a box or lasso (several) the selection view."""
    selection.record(st.session_state, selection.rows_from_event(st.session_state.get(key)), data_key,
                     pick_key=PICK_KEY, selection_key=SELECTION_KEY)


def _clear() -> None:
    st.session_state.pop(PICK_KEY, None)
    st.session_state.pop(SELECTION_KEY, None)
    st.session_state[PLOT_GEN_KEY] = st.session_state.get(PLOT_GEN_KEY, 0) + 1


def _framed(thumb: np.ndarray, width: int = 3) -> np.ndarray:
    """A thumbnail with a red frame: a neighbour of another class than the selected image."""
    out = thumb.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = (OTHER_CLASS_RED,) * 4
    return out


def _grid(thumbs: list[np.ndarray], per_row: int = GRID_COLUMNS, gap: int = 3) -> np.ndarray:
    """Thumbnails (size, size, 3) in rows of ``per_row`` on white: one picture, drawn at once."""
    size = thumbs[0].shape[0]
    rows = -(-len(thumbs) // per_row)
    width = min(len(thumbs), per_row)
    out = np.full((rows * size + (rows - 1) * gap, width * size + (width - 1) * gap, 3), 255, dtype=np.uint8)
    for i, thumb in enumerate(thumbs):
        top, left = (i // per_row) * (size + gap), (i % per_row) * (size + gap)
        out[top:top + size, left:left + size] = thumb
    return out


def _class_name(es: EmbeddingSet, row: int) -> str:
    c = int(es.labels[row])
    return es.classes[c] if 0 <= c < len(es.classes) else "?"


def _test_images(item: dict[str, Any], rows: list[int] | np.ndarray) -> torch.Tensor:
    """The test images of rows of the item's embedding set."""
    index = torch.as_tensor(item["es"].indices[np.asarray(rows, dtype=np.int64)], dtype=torch.long)
    return state.load_splits(item["cfg"].data).test.images[index]


def _show_column(item: dict[str, Any], side: str) -> None:
    es: EmbeddingSet = item["es"]
    st.markdown(f"**{_label(item['source'])}**")
    scores = _scores(item["path"], es)
    m1, m2 = st.columns(2)
    knn, sil = scores.get("knn_accuracy"), scores.get("silhouette")
    m1.metric("Leave-one-out kNN among these test images", "–" if knn is None or math.isnan(knn) else f"{100 * knn:.1f}%",
              help="Share of the embedded test images whose 20 nearest neighbours among the others (cosine) vote for "
                   "their own class. Not the run's kNN accuracy in the encoder list, which classifies the whole test "
                   "set from the labelled training images.")
    m2.metric("Silhouette", "–" if sil is None or math.isnan(sil) else f"{sil:.3f}",
              help="From -1 to 1: how much closer points are to their own class than to the next one.")
    xy, note, umap = None, "", item["umap"]
    if umap is not None:
        if not umap.done():
            note = ("UMAP is computing in the background" +
                    ("" if umap_warm() else " (its one-off compile is still warming up)") + "; showing PCA meanwhile.")
        elif (error := umap.exception()) is not None:
            note = f"UMAP failed ({type(error).__name__}: {error}); showing PCA."
        else:
            xy = umap.result()
    if xy is None:
        xy = _pca(item["path"], es)
    pick = st.session_state.get(PICK_KEY)
    selected = pick[1] if pick and pick[0] == item["data_key"] and 0 <= pick[1] < len(es) else None
    chosen = selection.applies(st.session_state.get(SELECTION_KEY), item["data_key"], len(es))
    neighbours = nearest_neighbours(es.features, selected, k=NEIGHBOURS) if selected is not None else None
    others = selection.other_class(es.labels, selected, neighbours) if neighbours is not None else None
    right = item["right"]
    generation = st.session_state.get(PLOT_GEN_KEY, 0)
    key = f"emb.plot.{side}" + (f".{generation}" if generation else "")
    fig = charts.embedding_scatter(
        np.asarray(xy), es.labels, es.classes, selected=selected, highlight=chosen, marked=others,
        dragmode=MOUSE_MODES.get(mouse_choice, "pan"),
        colour_by=None if right is None else np.where(right, "correct", "incorrect"), colours=CORRECT_COLOURS)
    st.plotly_chart(fig, key=key, on_select=lambda: _picked(key, item["data_key"]),
                    selection_mode=("points", "box", "lasso"), config={"displayModeBar": False, "scrollZoom": True})
    caption = (f"{len(es)} test images · {'UMAP' if note == '' and layout_choice == 'UMAP' else 'PCA'}"
               f" of {es.features.shape[1]}-d features. {note}")
    if right is not None:
        hits, misses = selection.correct_counts(right)
        caption += (f" kNN from the labelled training images gets {100 * hits / max(len(right), 1):.1f}% of them "
                    f"right ({hits} correct, {misses} incorrect).")
    st.caption(caption)
    if chosen is not None and len(chosen) > 1:
        share, chance = neighbour_share(es.features, chosen, k=SHARE_K)
        st.markdown(f"**Selection under this encoder:** {100 * share:.0f}% of the {SHARE_K} nearest neighbours of "
                    f"the {len(chosen)} selected images are selected too (chance: {100 * chance:.0f}%).",
                    help="How tightly the encoder keeps these images together, in its full feature space "
                         "(cosine), not in the 2-D picture. Far above chance: it sees them as a group.")
        return
    if selected is None:
        st.caption("Click a point to see the image and its nearest neighbours." if MOUSE_MODES.get(mouse_choice) == "pan"
                   else "Drag a lasso around points to select them (a lasso around one point shows its neighbours).")
        return
    _show_neighbours(item, selected, neighbours, set(others))


def _show_neighbours(item: dict[str, Any], selected: int, neighbours: np.ndarray, others: set[int]) -> None:
    """The clicked image and its nearest neighbours; those of another class framed in red and marked ≠."""
    es: EmbeddingSet = item["es"]
    big = images.thumbnails(_test_images(item, [selected]), SELECTED_PX)[0]
    small = images.thumbnails(_test_images(item, neighbours), THUMB_PX)
    same = len(neighbours) - len(others)
    st.markdown(f"Selected: class **{_class_name(es, selected)}** · {same}/{len(neighbours)} nearest neighbours "
                "share its class" + (f" · :red[{len(others)} of another class (≠, framed red; red diamonds on the plot)]" if others else ""))
    left, right = st.columns([1, 4], vertical_alignment="top")
    left.image(big, caption=f"selected: {_class_name(es, selected)}", width=SELECTED_PX)
    right.image([_framed(t) if r in others else t for t, r in zip(small, neighbours, strict=True)],
                caption=[("≠ " if r in others else "") + _class_name(es, r) for r in neighbours], width=THUMB_PX)


def _clear_button() -> None:
    st.button("Clear selection", key="emb.clear", on_click=_clear, icon=":material/close:")


def _selected_in(items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[int]]]:
    """The plots the stored box or lasso selection applies to (those of the same images), with its rows."""
    stored = st.session_state.get(SELECTION_KEY)
    return [(item, rows) for item in items
            if (rows := selection.applies(stored, item["data_key"], len(item["es"]))) is not None]


def _show_selection(chosen: list[tuple[dict[str, Any], list[int]]]) -> None:
    """A box or lasso selection: its images, its class mix and, when scored, how many each encoder gets right."""
    item, rows = chosen[0]
    es: EmbeddingSet = item["es"]
    head, button = st.columns([5, 1], vertical_alignment="bottom")
    head.subheader(f"Selection: {len(rows)} test images")
    with button:
        _clear_button()
    scored = [i for i, _ in chosen if i["right"] is not None]
    right = dict(zip(_short_names([i["source"] for i in scored]), [i["right"] for i in scored], strict=True))
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
            thumbs = images.thumbnails(_test_images(item, group), GRID_PX)
            if first_right is not None:
                thumbs = [t if first_right[r] else _framed(t) for t, r in zip(thumbs, group, strict=True)]
            count = f"{len(group)} of {counts[c]} shown" if len(group) < counts[c] else f"{counts[c]} images"
            st.image(_grid(thumbs), caption=f"{_class_name(es, group[0])} · {count}")


@st.fragment(run_every=1.0 if polling else None)
def plots() -> None:
    if not prepared:
        return
    cols = st.columns(len(prepared), gap="large")
    for col, item, side in zip(cols, prepared, ("a", "b"), strict=False):
        with col, state.user_errors():
            _show_column(item, side)
    if chosen := _selected_in(prepared):
        with state.user_errors():
            _show_selection(chosen)
    elif PICK_KEY in st.session_state or SELECTION_KEY in st.session_state:
        _clear_button()
    if polling and not _umap_running(prepared):
        st.rerun()  # UMAP is done: a full rerun redraws and stops the polling


plots()

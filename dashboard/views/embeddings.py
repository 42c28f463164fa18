"""Embeddings: where an encoder puts the test images, in 2-D, coloured by class.

A good encoder puts images of one class together even though BYOL never saw a label. Pick one or two
encoders (a run's, or a random init of the same network); PCA shows at once, UMAP follows from a
background thread. Click a point to see its image and its nearest neighbours under each encoder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from byol_core.config import ExperimentConfig, to_json
from byol_core.embeddings import (
    CACHE_DIRNAME,
    RANDOM_INIT,
    UMAP_MIN_POINTS,
    EmbeddingSet,
    compute_embeddings,
    embedding_cache_path,
    nearest_neighbours,
    pca_2d,
    reference_config,
    separation_scores,
    umap_2d,
    umap_warm,
)
from byol_core.summary import list_summaries
from dashboard import charts, images, state

NONE = "— none —"
NEIGHBOURS = 8
THUMB_PX = 48
SELECTED_PX = 96
PICK_KEY = "emb.pick"  # (data key, row) of the selected test image, shared by both plots

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
    "nearest neighbours."
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
layout_choice = st.radio("Layout", ["UMAP", "PCA"], horizontal=True, key="emb.layout",
                         help="PCA is instant and linear; UMAP (computed in the background) keeps neighbourhoods "
                              "and usually shows clusters better.")
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
    from byol_core.runs import RunStore

    return compute_embeddings(RunStore(root), source, reference_run=ref, max_points=n)


@st.cache_data(show_spinner=False, max_entries=16)
def _scores(cache_path: str, _es: EmbeddingSet) -> dict[str, float]:
    return separation_scores(_es.features, _es.labels)


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
                "data_key": f"{to_json(cfg.data)}|{len(es)}", "umap": umap}
    return None


def _umap_running(items: list[dict[str, Any]]) -> bool:
    return any(item["umap"] is not None and not item["umap"].done() for item in items)


prepared = [p for p in (_prepare(s) for s in sources) if p is not None]
polling = _umap_running(prepared)


def _picked(key: str, data_key: str) -> None:
    event = st.session_state.get(key)
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if not points:
        return
    custom = points[0].get("customdata")
    if isinstance(custom, list):
        custom = custom[0] if custom else None
    if custom is not None:
        st.session_state[PICK_KEY] = (data_key, int(custom))


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
    key = f"emb.plot.{side}"
    fig = charts.embedding_scatter(np.asarray(xy), es.labels, es.classes, selected=selected)
    st.plotly_chart(fig, key=key, on_select=lambda: _picked(key, item["data_key"]), selection_mode="points",
                    config={"displayModeBar": False, "scrollZoom": True})
    st.caption(f"{len(es)} test images · {'UMAP' if note == '' and layout_choice == 'UMAP' else 'PCA'}"
               f" of {es.features.shape[1]}-d features. {note}")
    if selected is None:
        st.caption("Click a point to see the image and its nearest neighbours.")
        return
    splits = state.load_splits(item["cfg"].data)
    rows = nearest_neighbours(es.features, selected, k=NEIGHBOURS)
    test_index = es.indices[[selected, *rows]]
    thumbs = images.thumbnails(splits.test.images[test_index[:1]], SELECTED_PX)

    def name(row: int) -> str:
        c = int(es.labels[row])
        return es.classes[c] if 0 <= c < len(es.classes) else "?"

    same = sum(int(es.labels[r]) == int(es.labels[selected]) for r in rows)
    st.markdown(f"Selected: class **{name(selected)}** · {same}/{len(rows)} nearest neighbours share its class")
    left, right = st.columns([1, 4], vertical_alignment="top")
    left.image(thumbs[0], caption=f"selected: {name(selected)}", width=SELECTED_PX)
    right.image(images.strip(splits.test.images[test_index[1:]], THUMB_PX, gap=3),
                caption="nearest neighbours: " + " · ".join(name(r) for r in rows))


@st.fragment(run_every=1.0 if polling else None)
def plots() -> None:
    if not prepared:
        return
    cols = st.columns(len(prepared), gap="large")
    for col, item, side in zip(cols, prepared, ("a", "b"), strict=False):
        with col, state.user_errors():
            _show_column(item, side)
    if polling and not _umap_running(prepared):
        st.rerun()  # UMAP is done: a full rerun redraws and stops the polling


plots()

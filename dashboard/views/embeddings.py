"""Embeddings: where an encoder puts the test images, in 2-D, coloured by class or by whether kNN gets them right.

A good encoder puts images of one class together even though BYOL never saw a label. Pick one or two
encoders (a run's, or a random init of the same network); PCA shows at once, UMAP follows from a
background thread. Click a point to see its image and its nearest neighbours under each encoder; drag a
lasso (or a box) around several to see their images, their classes, and how each encoder places them.
Up to the whole collection can be embedded (in the background, with progress, cached on disk); filters,
saved selections, the confusion matrix, "images like this one" and exports are the explorer's tools
(``dashboard/explorer_panels.py``). One accuracy per encoder: its run's headline (``embedding_words``).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from byol_core.analysis.embeddings import RANDOM_INIT, collection_size
from byol_core.text import markdown_text
from dashboard import embedding_panels as panels
from dashboard import explorer_panels as explorer
from dashboard import run_list, state

NONE = "— none —"
BY_CLASS, BY_CORRECT = "true class", "correct / incorrect"
# Plotly dragmode per mouse mode. Streamlit turns plotly's click-to-select off while the dragmode is
# lasso or box (a click then clears the selection), so clicking one point needs a mode of its own.
MOUSE_MODES = {"click a point": "pan", "lasso a group": "lasso"}
SCOPES = {"test images": "test", "whole collection": "all"}

manager = state.get_manager()
store = manager.store
projections = state.get_projections()
# Pretrained encoders first (newest first), then supervised ones: the default view is a BYOL encoder.
encoders = sorted([s for s in run_list.list_summaries(store) if s.usable_encoder and not s.archived],
                  key=lambda s: not (s.stage_info and s.stage_info.pretraining))
by_id = {s.id: s for s in encoders}

st.title("Embeddings")
st.markdown(
    "Each dot is an image (the test images, or the whole collection), placed by the encoder's features (squeezed to 2-D) and coloured by its "
    "**true class**, which BYOL never saw. Tight, separate colours mean the features already know the classes; "
    "compare a trained encoder with a **random init** of the same network. Click a dot to see the image and its "
    "nearest neighbours; switch the mouse to **lasso a group** and drag around several dots to see their images "
    "and classes."
)


def label(source: str) -> str:
    return panels.encoder_label(source, by_id)


options = [i.id for i in encoders] + [RANDOM_INIT]
c1, c2, c3 = st.columns([2, 2, 1])
source_a = c1.selectbox("Encoder", options, index=0, format_func=label, key="emb.a")
options_b = [NONE, *[o for o in options if o != source_a]]
source_b = c2.selectbox("Side by side with", options_b, format_func=label, key="emb.b",
                        index=options_b.index(RANDOM_INIT) if RANDOM_INIT in options_b else 0)
first_run = next((by_id[s] for s in (source_a, source_b) if s in by_id), encoders[0] if encoders else None)
scope = SCOPES[c3.radio("Images", list(SCOPES), horizontal=True, key="emb.scope",
                        help="The test images (scored by the runs), or every image of the data set: train, "
                             "validation, test and the extra unlabelled ones. Over 10,000 images are embedded in "
                             "the background, once per encoder (cached on disk).")]
n_test = None
if scope == "all" and first_run is not None and first_run.config is not None:
    with state.user_errors("Cannot count the collection: "):
        n_test = collection_size(state.load_splits(first_run.config.data), "all")
else:
    n_test = first_run.results.get("test_images") if first_run is not None else None
cap = 10_000 if scope == "test" and not isinstance(n_test, int) else None  # unknown size: the old default cap
top = int(n_test) if isinstance(n_test, int) and n_test >= 50 else (cap or 10_000)  # never more than there are
what = "test images" if scope == "test" else "images of the collection"
max_points = c3.slider(what[0].upper() + what[1:], min_value=min(50, top), max_value=top, value=min(1000, top),
                       step=1 if top < 500 else 50, key=f"emb.n.{scope}.{top}",
                       help=f"How many {what} to embed (the same images for both encoders)."
                            + (f" There are {n_test:,}." if isinstance(n_test, int) else ""))
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

prepared = [p for p in (panels.prepare(store, projections, s, by_id, reference=reference, max_points=int(max_points),
                                       umap=layout_choice == "UMAP", score=colour_choice == BY_CORRECT, scope=scope)
                        for s in sources) if p is not None]
pending = [p for p in prepared if isinstance(p, panels.Pending)]
ready = [p for p in prepared if isinstance(p, panels.EncoderPlot)]
polling = panels.umap_running(ready)  # PCA is drawn meanwhile; a cheap watcher reruns the page once UMAP is done


@st.fragment(run_every=1.0 if any(p.error is None for p in pending) else None)
def progress(pending: list[panels.Pending]) -> None:
    explorer.show_pending(pending)


@st.fragment(run_every=1.0 if polling else None)
def umap_watch(chosen: list[panels.EncoderPlot]) -> None:
    # Redrawing both scatters each second while UMAP computed took CPU from UMAP and the browser alike.
    if polling and not panels.umap_running(chosen):
        st.rerun()  # UMAP is done: one full run draws it


progress(pending)
umap_watch(ready)
filters = explorer.filter_controls(ready[0].es.classes, predictions=ready[0].predicted is not None) if ready else None
with state.user_errors("Filter: "):
    shown = explorer.shown_rows(ready[0], filters) if ready and filters is not None else None


@st.fragment
def plots(chosen: list[panels.EncoderPlot], layout: str, dragmode: str, shown: np.ndarray | None) -> None:
    panels.show_plots(chosen, layout=layout, dragmode=dragmode, shown=shown)  # a lasso reruns this part alone


plots(ready, layout_choice, MOUSE_MODES.get(mouse_choice, "pan"), shown)
if ready:
    st.subheader("Explore")
    st.caption(f"Tools for {markdown_text(panels.encoder_label(ready[0].source, by_id))}'s "
               f"{'test images' if scope == 'test' else 'collection'}; filters and saved selections apply to both "
               "plots (prediction filters use this encoder's kNN predictions).")
    explorer.tools(store, ready[0], shown, reference)

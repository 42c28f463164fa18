"""Embeddings: where an encoder puts the test images, in 2-D, coloured by class or by whether kNN gets them right.

A good encoder puts images of one class together even though BYOL never saw a label. Pick one or two
encoders (a run's, or a random init of the same network); PCA shows at once, UMAP follows from a
background thread. Click a point to see its image and its nearest neighbours under each encoder; drag a
lasso (or a box) around several to see their images, their classes, and how each encoder places them.
"""

from __future__ import annotations

import streamlit as st

from byol_core.analysis.embeddings import RANDOM_INIT
from byol_core.lab.summary import list_summaries
from dashboard import embedding_panels as panels
from dashboard import state

NONE = "— none —"
BY_CLASS, BY_CORRECT = "true class", "correct / incorrect"
# Plotly dragmode per mouse mode. Streamlit turns plotly's click-to-select off while the dragmode is
# lasso or box (a click then clears the selection), so clicking one point needs a mode of its own.
MOUSE_MODES = {"click a point": "pan", "lasso a group": "lasso"}

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


def label(source: str) -> str:
    return panels.encoder_label(source, by_id)


options = [i.id for i in encoders] + [RANDOM_INIT]
c1, c2, c3 = st.columns([2, 2, 1])
source_a = c1.selectbox("Encoder", options, index=0, format_func=label, key="emb.a")
options_b = [NONE, *[o for o in options if o != source_a]]
source_b = c2.selectbox("Side by side with", options_b, format_func=label, key="emb.b",
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

prepared = [p for p in (panels.prepare(store, projections, s, by_id, reference=reference, max_points=int(max_points),
                                       umap=layout_choice == "UMAP", score=colour_choice == BY_CORRECT)
                        for s in sources) if p is not None]
polling = panels.umap_running(prepared)  # the plots redraw each second until every UMAP layout is done


@st.fragment(run_every=1.0 if polling else None)
def plots(shown: list[panels.EncoderPlot], layout: str, dragmode: str, polling: bool) -> None:
    panels.show_plots(shown, layout=layout, dragmode=dragmode, polling=polling)


plots(prepared, layout_choice, MOUSE_MODES.get(mouse_choice, "pan"), polling)

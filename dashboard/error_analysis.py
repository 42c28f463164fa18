"""Where a run's model fails: its confusion matrix and a gallery of misclassified test images."""

from __future__ import annotations

import os

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from byol_core.analysis.embeddings import cell_rows
from byol_core.analysis.error_analysis import Predictions, knn_predictions, stored_predictions
from byol_core.data import load_data
from byol_core.lab.run_store import RunStore
from byol_core.lab.summary import RunSummary
from dashboard import images, state

GALLERY = 24
CELL_GALLERY = 48


@st.cache_data(show_spinner=False, max_entries=8)
def _predictions(root: str, run_id: str, stamp: float) -> Predictions:
    store = RunStore(root)
    return stored_predictions(store, run_id) or knn_predictions(store, run_id)


def confusion_figure(pred: Predictions) -> go.Figure:
    matrix = pred.confusion()
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(z=share, x=pred.classes, y=pred.classes, colorscale="Blues", zmin=0, zmax=1,
                               text=matrix, texttemplate="%{text}", hovertemplate="true %{y} → predicted %{x}: "
                               "%{text} images (%{z:.0%} of the class)<extra></extra>", colorbar={"title": "share"}))
    fig.update_layout(title="Confusion matrix", xaxis={"title": "predicted class", "type": "category"},
                      yaxis={"title": "true class", "type": "category", "autorange": "reversed"},
                      template="plotly_white", height=140 + 32 * len(pred.classes),
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def show(store: RunStore, summary: RunSummary) -> None:
    """The error analysis of one finished run with an encoder (kNN or the trained classifier's predictions)."""
    with state.user_errors("No error analysis for this run: "):
        encoder = store.get(summary.id).encoder_path
        stamp = os.path.getmtime(encoder)
        with st.spinner("Scoring the test images…"):
            pred = _predictions(str(store.root), summary.id, stamp)
        wrong = pred.misclassified(GALLERY)
        st.caption(f"Predictions of {pred.source}: {100 * pred.accuracy:.1f}% of {len(pred.labels)} test images "
                   f"right, {int((pred.predicted != pred.labels).sum())} wrong.")
        st.plotly_chart(confusion_figure(pred), key=f"confusion.{summary.id}", config={"displayModeBar": False})
        if len(wrong):
            test_images = load_data(summary.config.data).test.images
            cell_images(pred, test_images, key=f"confusion.cell.{summary.id}")
            st.markdown("**Misclassified test images** (the most frequent confusions first)")
            thumbs = images.thumbnails(test_images[torch.as_tensor(wrong, dtype=torch.long)], size=72)
            captions = [f"{pred.classes[pred.labels[i]]} → {pred.classes[pred.predicted[i]]}" for i in wrong]
            st.image(thumbs, caption=captions, width=72)


def cell_images(pred: Predictions, test_images: torch.Tensor, *, key: str) -> None:
    """Pick a confusion-matrix cell (true → predicted, most frequent first) and see its test images."""
    matrix = pred.confusion()
    cells = sorted(((int(matrix[t, p]), t, p) for t in range(len(pred.classes)) for p in range(len(pred.classes))
                    if t != p and matrix[t, p]), reverse=True)
    options = {f"true {pred.classes[t]} → predicted {pred.classes[p]} · {n} image{'' if n == 1 else 's'}": (t, p)
               for n, t, p in cells}
    choice = st.selectbox("Images of a cell of the matrix", [None, *options], key=key,
                          format_func=lambda o: "— pick a cell —" if o is None else o)
    if choice is None:
        return
    t, p = options[choice]
    rows = cell_rows(pred.labels, pred.predicted, t, p)
    shown = rows[:CELL_GALLERY]
    st.image(images.thumbnails(test_images[torch.as_tensor(shown, dtype=torch.long)], size=72),
             caption=[f"test #{i}" for i in shown], width=72)
    if len(rows) > len(shown):
        st.caption(f"Showing {len(shown)} of {len(rows)}; the Embeddings page filters to all of them "
                   "(Filter the points: true class and predicted class).")

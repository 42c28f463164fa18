"""Where a run's model fails: its confusion matrix and a gallery of misclassified test images."""

from __future__ import annotations

import os

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from byol_core.analysis.error_analysis import Predictions, knn_predictions, stored_predictions
from byol_core.data import load_data
from byol_core.lab.run_store import RunStore
from byol_core.lab.summary import RunSummary
from dashboard import images, state

GALLERY = 24


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
            st.markdown("**Misclassified test images** (the most frequent confusions first)")
            thumbs = images.thumbnails(test_images[torch.as_tensor(wrong, dtype=torch.long)], size=72)
            captions = [f"{pred.classes[pred.labels[i]]} → {pred.classes[pred.predicted[i]]}" for i in wrong]
            st.image(thumbs, caption=captions, width=72)

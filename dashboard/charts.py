"""Plotly figures built from a run's metric events (plain dicts from ``metrics.jsonl``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from byol_core.stages import Stage

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777",
           "#4b5563", "#65a30d")
METHOD_COLOURS = {
    "BYOL kNN": "#2563eb",
    "BYOL fine-tuned": "#1d4ed8",
    "BYOL linear probe": "#60a5fa",
    "supervised from scratch": "#f97316",
    "random-init kNN": "#9ca3af",
    "kNN (evaluated run)": "#6b7280",
}


def _series(events: Iterable[dict[str, Any]], kind: str, x: str, y: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for e in events:
        if e.get("kind") == kind and e.get(y) is not None and e.get(x) is not None:
            xs.append(e[x])
            ys.append(e[y])
    return xs, ys


def has_points(events: Sequence[dict[str, Any]]) -> bool:
    return any(e.get("kind") == "step" and e.get("loss") is not None for e in events)


def training_figure(events: Sequence[dict[str, Any]], stage: Stage, height: int = 460) -> go.Figure:
    """Loss, learning rate and tau, collapse monitor, per-epoch accuracy of one run (2x2 grid)."""
    byol = stage.pretraining
    acc_key = stage.metric
    titles = ("Loss", "Learning rate" + (" and τ" if byol else ""),
              "Collapse monitor (std of normalised projections)" if byol else "Images per second",
              f"{stage.metric_name[0].upper()}{stage.metric_name[1:]} per epoch")
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.1, vertical_spacing=0.24,
                        specs=[[{}, {"secondary_y": byol}], [{}, {}]])
    x, y = _series(events, "step", "step", "loss")
    if not x:  # stages without step events (the linear probe) log their loss once per epoch
        x, y = _series(events, "epoch", "step", "loss")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if len(x) < 30 else "lines", name="loss",
                             line={"color": PALETTE[0]}), row=1, col=1)
    x, y = _series(events, "step", "step", "lr")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="learning rate", line={"color": PALETTE[1]}),
                  row=1, col=2)
    if byol:
        x, y = _series(events, "step", "step", "tau")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="τ (target EMA)", line={"color": PALETTE[4]}),
                      row=1, col=2, secondary_y=True)
        x, y = _series(events, "step", "step", "collapse_std")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="collapse std", line={"color": PALETTE[2]}),
                      row=2, col=1)
        _, ref = _series(events, "step", "step", "collapse_reference")
        if ref:
            fig.add_hline(y=ref[-1], line_dash="dash", line_color="#6b7280", row=2, col=1,
                          annotation_text="1/√d (healthy)", annotation_position="bottom right")
            fig.add_hline(y=0.0, line_dash="dot", line_color="#dc2626", row=2, col=1,
                          annotation_text="0 (collapsed)", annotation_position="top right")
    else:
        x, y = _series(events, "step", "step", "img_per_s")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="img/s", line={"color": PALETTE[2]}), row=2, col=1)
    x, y = _series(events, "epoch", "epoch", acc_key)
    if not byol or x:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=acc_key.replace("_", " "),
                                 line={"color": PALETTE[3]}), row=2, col=2)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=2, col=2)
    for col in (1, 2):
        fig.update_xaxes(title_text="step", title_standoff=2, row=1, col=col)
    fig.update_xaxes(title_text="step", title_standoff=2, row=2, col=1)
    fig.update_xaxes(title_text="epoch", title_standoff=2, row=2, col=2)
    fig.update_layout(height=height, margin={"l": 40, "r": 20, "t": 40, "b": 30}, showlegend=False,
                      template="plotly_white")
    fig.update_annotations(font_size=13)
    return fig


def accuracy_bar(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Test accuracy of each finished run, coloured by method."""
    fig = go.Figure()
    methods: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        methods.setdefault(r["method"], []).append(r)
    for method, items in methods.items():
        fig.add_trace(go.Bar(
            x=[r["label"] for r in items], y=[r["accuracy"] for r in items], name=method,
            marker_color=METHOD_COLOURS.get(method),
            text=[f"{100 * r['accuracy']:.1f}%" for r in items], textposition="outside",
            hovertemplate="%{x}<br>%{y:.2%}<extra>" + method + "</extra>",
        ))
    fig.update_layout(yaxis={"range": [0, 1.08], "tickformat": ".0%", "title": "test accuracy"},
                      xaxis={"title": None}, template="plotly_white", height=380, barmode="group",
                      margin={"l": 40, "r": 20, "t": 20, "b": 40},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def accuracy_curves(curves: Sequence[tuple[str, str, list[float], list[float]]]) -> go.Figure:
    """Accuracy against epoch, one line per run: (label, method, epochs, accuracies)."""
    fig = go.Figure()
    for i, (label, method, xs, ys) in enumerate(curves):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=label,
                                 line={"color": METHOD_COLOURS.get(method, PALETTE[i % len(PALETTE)])},
                                 hovertemplate="epoch %{x}<br>%{y:.2%}<extra>" + label + "</extra>"))
    fig.update_layout(xaxis={"title": "epoch"}, yaxis={"title": "accuracy", "tickformat": ".0%", "range": [0, 1]},
                      template="plotly_white", height=380, margin={"l": 40, "r": 20, "t": 20, "b": 40},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def embedding_scatter(xy: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                      selected: int | None = None, height: int = 460) -> go.Figure:
    """WebGL scatter, one trace per class; each point's customdata is its row in the embedding set."""
    fig = go.Figure()
    rows = np.arange(len(labels))
    for c in sorted({int(v) for v in labels}):
        mask = labels == c
        name = classes[c] if 0 <= c < len(classes) else ("unlabelled" if c < 0 else str(c))
        fig.add_trace(go.Scattergl(
            x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=name, customdata=rows[mask],
            marker={"size": 6, "color": PALETTE[c % len(PALETTE)] if c >= 0 else "#9ca3af", "opacity": 0.8},
            hovertemplate=f"class {name}<br>point %{{customdata}}<extra></extra>",
        ))
    if selected is not None and 0 <= selected < len(xy):
        fig.add_trace(go.Scattergl(x=[xy[selected, 0]], y=[xy[selected, 1]], mode="markers", name="selected",
                                   customdata=[selected], hoverinfo="skip",
                                   marker={"size": 16, "color": "rgba(0,0,0,0)",
                                           "line": {"color": "#111827", "width": 3}}))
    fig.update_layout(template="plotly_white", height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis={"showticklabels": False, "title": None}, yaxis={"showticklabels": False, "title": None},
                      legend={"itemsizing": "constant"}, clickmode="event+select")
    return fig

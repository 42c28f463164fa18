"""Plotly figures built from a run's metric events (plain dicts from ``metrics.jsonl``)."""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from byol_core.events import EPOCH, STEP
from byol_core.lab.comparison import MethodResult, order_methods
from byol_core.lab.stages import Stage
from byol_core.stats_text import clipped_interval, format_ci, raw_interval_text
from dashboard.figure_memo import memo_figure

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


def series(events: Iterable[dict[str, Any]], kind: str, x: str, y: str) -> tuple[list[float], list[float]]:
    """(xs, ys) of the ``kind`` events ("step", "epoch") that hold a number under ``y`` and a value under ``x``.

    A field a stage leaves empty (None, or text where a number goes) is skipped, not drawn as a gap.
    """
    xs, ys = [], []
    for e in events:
        if e.get("kind") == kind and isinstance(e.get(y), (int, float)) and e.get(x) is not None:
            xs.append(e[x])
            ys.append(e[y])
    return xs, ys


def has_points(events: Sequence[dict[str, Any]]) -> bool:
    return any(e.get("kind") == STEP and e.get("loss") is not None for e in events)


RIGHT_AXIS = "right-axis"  # a trace's meta when it belongs on its panel's secondary y axis
NICE_STEPS = (1, 2, 5, 10)  # tick steps are one of these times a power of ten


def nice_ticks(values: Iterable[float], intervals: int = 4) -> list[float]:
    """Round tick values (multiples of 1, 2 or 5 x 10^k) across the range of ``values``, about ``intervals`` apart.

    A flat series gets one tick at its value; no finite value, no ticks.
    """
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return []
    low, high = min(finite), max(finite)
    if high - low <= 1e-12 * max(abs(low), abs(high)):
        return [high]
    wanted = (high - low) / intervals
    magnitude = 10.0 ** math.floor(math.log10(wanted))
    step = next(m * magnitude for m in NICE_STEPS if m * magnitude >= wanted * (1 - 1e-9))
    # Whole multiples of the step, so 0.99 + 0.002 never prints as 0.9920000000000001.
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def _scientific(value: float, digits: int) -> str:
    """``value`` as e.g. 1.5e-3: no trailing zeros, no exponent padding."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """The shortest labels that still tell each tick from its neighbours: scientific (1.5e-3) or fixed
    decimals (0.9925), whichever reads shorter; every label parses back to within 0.1% of a tick step."""
    if not ticks:
        return []
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    tolerance = 1e-3 * (min(gaps) if gaps else abs(ticks[0]) or 1.0)
    candidates = []
    for fmt in (_scientific, lambda v, d: f"{v:.{d}f}"):
        for digits in range(16):
            labels = [fmt(t, digits) for t in ticks]
            if all(abs(float(label) - t) <= tolerance for label, t in zip(labels, ticks, strict=True)):
                candidates.append(labels)
                break
    return min(candidates, key=lambda labels: max(map(len, labels)))  # 1.5e-3 rather than 0.0015 on a tie


def readable_axis(values: Iterable[float]) -> dict[str, Any]:
    """Axis settings with round ticks and short, distinct labels for ``values`` (plotly's own ".0e" printed
    2e-3 twice on a learning rate between 1.5e-3 and 2.5e-3, and τ as 0.98966...)."""
    ticks = nice_ticks(values)
    return {"tickmode": "array", "tickvals": ticks, "ticktext": tick_labels(ticks)}


@memo_figure
def training_figure(events: Sequence[dict[str, Any]], stage: Stage, height: int = 460) -> go.Figure:
    """Loss, learning rate (and τ), collapse monitor or speed, per-epoch accuracy of one run.

    Panels a stage logs nothing for (the linear probe has no per-step learning rate or speed) are
    left out rather than drawn empty.
    """
    pretraining = stage.pretraining
    loss = series(events, STEP, "step", "loss")
    if not loss[0]:  # stages without step events (the linear probe) log their loss once per epoch
        loss = series(events, EPOCH, "step", "loss")
    panels: list[tuple[str, str, list[go.Scatter]]] = [
        ("Loss", "step", [go.Scatter(x=loss[0], y=loss[1], mode="lines+markers" if len(loss[0]) < 30 else "lines",
                                     name="loss", line={"color": PALETTE[0]})])]
    lr = series(events, STEP, "step", "lr")
    if lr[0]:
        traces = [go.Scatter(x=lr[0], y=lr[1], mode="lines", name="learning rate", line={"color": PALETTE[1]},
                             hovertemplate="step %{x}<br>learning rate %{y:.3~e}<extra></extra>")]
        tau = series(events, STEP, "step", "tau")
        if tau[0]:
            traces.append(go.Scatter(x=tau[0], y=tau[1], mode="lines", name="τ (target EMA, right axis)",
                                     line={"color": PALETTE[4]}, meta=RIGHT_AXIS,
                                     hovertemplate="step %{x}<br>τ %{y:.6~f}<extra></extra>"))
        panels.append(("Learning rate" + (" and τ" if tau[0] else ""), "step", traces))
    collapse = series(events, STEP, "step", "collapse_std")
    speed = series(events, STEP, "step", "img_per_s")
    if pretraining and collapse[0]:
        ref = series(events, STEP, "step", "collapse_reference")[1]
        traces = [go.Scatter(x=collapse[0], y=collapse[1], mode="lines", name="std of normalised projections",
                             line={"color": PALETTE[2]})]
        if ref:  # reference lines as legend entries: labels never collide with the curve
            ends = [collapse[0][0], collapse[0][-1]]
            traces += [go.Scatter(x=ends, y=[ref[-1]] * 2, mode="lines", name="1/√d: healthy spread",
                                  line={"color": "#6b7280", "dash": "dash"}),
                       go.Scatter(x=ends, y=[0.0, 0.0], mode="lines", name="0: collapsed",
                                  line={"color": "#dc2626", "dash": "dot"})]
        panels.append(("Collapse monitor", "step", traces))
    elif speed[0]:
        panels.append(("Images per second", "step", [go.Scatter(x=speed[0], y=speed[1], mode="lines", name="img/s",
                                                                line={"color": PALETTE[2]})]))
    acc = series(events, EPOCH, "epoch", stage.curve_metric)
    if acc[0]:  # scored on the validation split while training; the test set is scored once, at the end
        name = f"{stage.metric_name.replace('test ', '')} on validation"
        panels.append((f"{name[0].upper()}{name[1:]} per epoch", "epoch",
                       [go.Scatter(x=acc[0], y=acc[1], mode="lines+markers", name=name,
                                   line={"color": PALETTE[3]})]))
    rows = (len(panels) + 1) // 2
    secondary = [[{"secondary_y": any(t.meta == RIGHT_AXIS for t in panels[i][2])} if i < len(panels) else {}
                  for i in range(r * 2, r * 2 + 2)] for r in range(rows)]
    fig = make_subplots(rows=rows, cols=2, subplot_titles=[p[0] for p in panels], horizontal_spacing=0.1,
                        vertical_spacing=0.24 if rows > 1 else 0.1, specs=secondary)
    for i, (title, x_title, traces) in enumerate(panels):
        row, col = i // 2 + 1, i % 2 + 1
        for trace in traces:
            trace.update(legendgroup=title, showlegend=len(traces) > 1)
            fig.add_trace(trace, row=row, col=col, secondary_y=True if trace.meta == RIGHT_AXIS else None)
        fig.update_xaxes(title_text=x_title, title_standoff=2, row=row, col=col)
        if title.startswith("Learning rate"):
            for trace in traces:
                fig.update_yaxes(readable_axis(trace.y), row=row, col=col, secondary_y=trace.meta == RIGHT_AXIS)
        if x_title == "epoch":
            fig.update_yaxes(range=[0, 1], tickformat=".0%", row=row, col=col)
    fig.update_layout(height=height if rows > 1 else height // 2 + 60, margin={"l": 50, "r": 20, "t": 40, "b": 30},
                      template="plotly_white", legend={"orientation": "h", "y": -0.12, "font": {"size": 11}})
    fig.update_annotations(font_size=13)
    return fig


@memo_figure
def accuracy_bar(methods: Iterable[MethodResult]) -> go.Figure:
    """One bar per method, in METHOD_ORDER (never sorted by a number): the mean over its seeds with its 95%
    interval clipped to 0-100%, each seed's run as a dash; hovering a bar gives the raw interval and what it covers.

    The accuracy axis runs from 0 to 100%, so bar heights compare as the accuracies do.
    """
    by_method = {m.method: m for m in methods}
    order = [by_method[name] for name in order_methods(by_method)]
    names, summaries = [m.method for m in order], [m.summary for m in order]
    shown = [clipped_interval(s) or (s.mean, s.mean) for s in summaries]
    fig = go.Figure(go.Bar(
        x=names, y=[s.mean for s in summaries],
        marker_color=[METHOD_COLOURS.get(m.method, PALETTE[i % len(PALETTE)]) for i, m in enumerate(order)],
        error_y={"type": "data", "symmetric": False, "array": [high - s.mean for s, (_, high) in zip(summaries, shown)],
                 "arrayminus": [s.mean - low for s, (low, _) in zip(summaries, shown)]},
        text=[f"{100 * s.mean:.1f}%" for s in summaries], textposition="inside", insidetextanchor="start",
        textangle=0, customdata=[[format_ci(s), raw_interval_text(s), m.note] for s, m in zip(summaries, order)],
        hovertemplate="%{x}: %{customdata[0]}<br>%{customdata[1]}<br>%{customdata[2]}<extra></extra>",
        showlegend=False))
    fig.add_trace(go.Scatter(x=[m.method for m in order for _ in m.values], y=[v for m in order for v in m.values],
                             mode="markers", marker={"color": "#111827", "size": 9, "symbol": "line-ew-open"},
                             name="one seed's run", hovertemplate="%{x}: %{y:.1%}<extra>one seed's run</extra>"))
    fig.update_layout(yaxis={"range": [0.0, 1.0], "tickformat": ".0%",
                             "title": "test accuracy: mean over seeds, 95% interval"},
                      xaxis={"title": None, "categoryorder": "array", "categoryarray": names},
                      template="plotly_white", height=400, margin={"l": 50, "r": 20, "t": 10, "b": 40},
                      legend={"orientation": "h", "y": -0.25})
    return fig


CURVES_PLOT_PX = 380  # accuracy_curves' height without its legend
LEGEND_LINE_PX = 21  # one legend line at font size 12, with plotly's spacing


@memo_figure
def accuracy_curves(curves: Sequence[tuple[str, str, list[float], list[float]]]) -> go.Figure:
    """Accuracy against epoch, one line per run: (label, method, epochs, accuracies)."""
    fig = go.Figure()
    for i, (label, method, xs, ys) in enumerate(curves):
        # A label carries a run's name: escaped, so plotly shows its tags (<a>, <b>) as text.
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=html.escape(label),
                                 line={"color": METHOD_COLOURS.get(method, PALETTE[i % len(PALETTE)])},
                                 hovertemplate="epoch %{x}<br>%{y:.2%}<extra>%{fullData.name}</extra>"))
    # The legend sits above the plot, one run a line, in a top margin that grows with it: below the plot, a
    # long list squeezed the plot until it covered the epoch axis title.
    legend_px = LEGEND_LINE_PX * len(curves) if len(curves) > 1 else 0
    fig.update_layout(xaxis={"title": "epoch"}, yaxis={"title": "accuracy", "tickformat": ".0%", "range": [0, 1]},
                      template="plotly_white", height=CURVES_PLOT_PX + legend_px,
                      margin={"l": 40, "r": 20, "t": 20 + legend_px, "b": 40},
                      legend={"orientation": "v", "yanchor": "bottom", "y": 1.03, "xanchor": "left",
                              "x": 0.0, "font": {"size": 12}})
    return fig


# Up to this many points an embedding scatter is SVG, beyond it WebGL. In a browser without a GPU, where WebGL is
# emulated on the CPU, each WebGL plot costs a new canvas: two plots of 500 points drew in 0.65 s as SVG against
# 0.80 s, and a filter answered in 0.35 s against 0.47 s. SVG draws each marker as an element of the page, and at
# 2,000 points WebGL was the quicker (filter 0.47 s against 0.63 s). benchmarks/explorer_points.py; the JSON in
# benchmarks/measured/explorer/points-*.json.
SVG_MAX_POINTS = 1_000


def scatter_trace(points: int) -> type[go.Scatter | go.Scattergl]:
    """The plotly trace type for a scatter of ``points`` points: SVG while few (:data:`SVG_MAX_POINTS`)."""
    return go.Scatter if points <= SVG_MAX_POINTS else go.Scattergl


def embedding_scatter(xy: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                      selected: int | None = None, height: int = 460, *,
                      colour_by: Sequence[str] | np.ndarray | None = None, colours: dict[str, str] | None = None,
                      highlight: Sequence[int] | np.ndarray | None = None,
                      marked: Sequence[int] | np.ndarray | None = None, dragmode: str | None = None) -> go.Figure:
    """A scatter (SVG or WebGL: :func:`scatter_trace`), one trace per class; each point's customdata is its row in
    the embedding set.

    ``colour_by``: a group name per point (e.g. "correct" / "incorrect") to colour by instead of the
    class, one trace per group; ``colours`` maps group names to colours and sets their legend order.
    ``highlight``: rows drawn with a dark ring (a box or lasso selection), trace "selection". ``marked``:
    rows drawn with a red diamond, trace "other class" (the selected point's neighbours of another class). ``dragmode``: plotly's,
    e.g. "lasso" so that a drag selects; None keeps plotly's default (zoom). A click selects one point.
    """
    fig = go.Figure()
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    trace = scatter_trace(len(labels))
    names = np.array([classes[c] if 0 <= c < len(classes) else ("unlabelled" if c < 0 else str(c))
                      for c in labels.tolist()], dtype=object)
    if colour_by is None:
        for c in sorted({int(v) for v in labels}):
            mask = labels == c
            fig.add_trace(trace(
                x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=names[mask][0], customdata=rows[mask],
                marker={"size": 6, "color": PALETTE[c % len(PALETTE)] if c >= 0 else "#9ca3af", "opacity": 0.8},
                hovertemplate=f"class {names[mask][0]}<br>point %{{customdata}}<extra></extra>",
            ))
    else:
        groups = np.asarray(colour_by, dtype=object)
        if len(groups) != len(labels):
            raise ValueError(f"colour_by has {len(groups)} values for {len(labels)} points.")
        colours = colours or {}
        order = [g for g in colours if (groups == g).any()] + sorted({str(g) for g in groups} - set(colours))
        for i, group in enumerate(order):
            mask = groups == group
            fig.add_trace(trace(
                x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=group, customdata=rows[mask],
                text=names[mask], marker={"size": 6, "color": colours.get(group, PALETTE[i % len(PALETTE)]),
                                          "opacity": 0.8},
                hovertemplate=f"class %{{text}} · {group}<br>point %{{customdata}}<extra></extra>",
            ))
    for picked, name, marker in (
            (highlight, "selection", {"size": 11, "color": "rgba(0,0,0,0)", "line": {"color": "#111827", "width": 1.5}}),
            (marked, "other class", {"size": 13, "symbol": "diamond-open", "color": "#dc2626",
                                                    "line": {"color": "#dc2626", "width": 2}})):
        chosen = np.asarray([] if picked is None else picked, dtype=np.int64).reshape(-1)
        chosen = chosen[(chosen >= 0) & (chosen < len(xy))]
        if len(chosen):
            fig.add_trace(trace(x=xy[chosen, 0], y=xy[chosen, 1], mode="markers", name=name,
                                customdata=chosen, hoverinfo="skip", marker=marker))
    if selected is not None and 0 <= selected < len(xy):
        fig.add_trace(trace(x=[xy[selected, 0]], y=[xy[selected, 1]], mode="markers", name="selected",
                            customdata=[selected], hoverinfo="skip",
                            marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "#111827", "width": 3}}))
    fig.update_layout(template="plotly_white", height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis={"showticklabels": False, "title": None}, yaxis={"showticklabels": False, "title": None},
                      legend={"itemsizing": "constant"}, clickmode="event+select")
    if dragmode is not None:
        fig.update_layout(dragmode=dragmode)
    return fig


DODGE_DECADES = 0.03  # each method's points sit this far apart on the log axis, so their error bars never overlap


@memo_figure
def label_efficiency(rows: Sequence[dict[str, Any]], height: int = 420) -> go.Figure:
    """Accuracy against the share of labels kept (log x), one line per method in the fixed method order, each
    point with its 95% interval as an error bar clipped to 0-100%, on a y axis from 0 to 100%.

    ``rows``: the sweep's rows (``method``, ``label_fraction``, ``mean``, ``ci95`` [low, high] or None, ``n``).
    Each method's points are nudged sideways by a fixed step (hover gives the true share), so seven methods'
    bars stay apart; a method without an interval at a point (one value, no per-image scores) has no bar there.
    """
    fig = go.Figure()
    methods = order_methods(r["method"] for r in rows)
    for i, method in enumerate(methods):
        points = sorted((r for r in rows if r["method"] == method), key=lambda r: r["label_fraction"])
        colour = METHOD_COLOURS.get(method, PALETTE[i % len(PALETTE)])
        nudge = 10 ** ((i - (len(methods) - 1) / 2) * DODGE_DECADES)
        # An accuracy lies in [0, 1]: an interval over few seeds can reach past it, the bar stops there.
        ends = [(max(r["ci95"][0], 0.0), min(r["ci95"][1], 1.0)) if r.get("ci95") else (r["mean"], r["mean"])
                for r in points]
        fig.add_trace(go.Scatter(
            x=[r["label_fraction"] * nudge for r in points], y=[r["mean"] for r in points], mode="lines+markers",
            name=method, line={"color": colour}, marker={"color": colour},
            error_y={"type": "data", "symmetric": False, "color": colour, "thickness": 1.5, "width": 4,
                     "array": [high - r["mean"] for r, (_, high) in zip(points, ends, strict=True)],
                     "arrayminus": [r["mean"] - low for r, (low, _) in zip(points, ends, strict=True)]},
            customdata=[[r["label_fraction"], r.get("n", 1), low, high] for r, (low, high) in zip(points, ends,
                                                                                                    strict=True)],
            hovertemplate="%{customdata[0]:.0%} of labels<br>%{y:.1%} (95% CI %{customdata[2]:.1%} to "
                          "%{customdata[3]:.1%}, n=%{customdata[1]})<extra>" + html.escape(method) + "</extra>"))
    fractions = sorted({r["label_fraction"] for r in rows})
    fig.update_layout(xaxis={"type": "log", "title": "share of training labels kept", "tickformat": ".0%",
                             "tickvals": fractions},
                      yaxis={"title": "test accuracy (mean, 95% CI; axis from 0%)", "tickformat": ".0%",
                             "range": [0.0, 1.02]},
                      template="plotly_white", height=height, margin={"l": 50, "r": 20, "t": 20, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    return fig


@memo_figure
def ablation_bars(rows: Sequence[dict[str, Any]], height: int = 360) -> go.Figure:
    """Each method with the full augmentation and without colour, as bars with 95% interval whiskers."""
    fig = go.Figure()
    for i, augmentation in enumerate(dict.fromkeys(r["augmentation"] for r in rows)):
        items = [r for r in rows if r["augmentation"] == augmentation]
        fig.add_trace(go.Bar(
            x=[r["method"] for r in items], y=[r["mean"] for r in items], name=augmentation,
            marker_color=PALETTE[i % len(PALETTE)],
            error_y={"type": "data", "symmetric": False,
                     "array": [(r["ci95"][1] - r["mean"]) if r.get("ci95") else 0 for r in items],
                     "arrayminus": [(r["mean"] - r["ci95"][0]) if r.get("ci95") else 0 for r in items]},
            text=[f"{100 * r['mean']:.1f}%" for r in items], textposition="outside"))
    lows = [r["ci95"][0] if r.get("ci95") else r["mean"] for r in rows] or [0.0]
    fig.update_layout(barmode="group", template="plotly_white", height=height,
                      yaxis={"title": "accuracy (mean, 95% CI)", "tickformat": ".0%",
                             "range": [max(0.0, min(lows) - 0.1), 1.0]},
                      margin={"l": 50, "r": 20, "t": 20, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return fig

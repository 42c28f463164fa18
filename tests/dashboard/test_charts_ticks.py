"""Axes and legends a person reads: learning-rate and τ ticks distinct and short, the Compare curves' legend
clear of the epoch axis, and the runs table's name column wide enough for the names."""

from __future__ import annotations

import math

import numpy as np
import pytest

from byol_core.lab.annotations import MAX_NAME_CHARS
from byol_core.lab.stages import get_stage
from dashboard import charts, tables

# (what, values): learning rates and τ as runs log them.
SERIES = {
    "lr 1.5e-3 to 2.5e-3 (plotly's .0e printed 2e-3 twice)": np.linspace(1.5e-3, 2.5e-3, 40),
    "lr warm-up to 2e-3, then cosine": np.r_[np.linspace(0, 2e-3, 10), 2e-3 * np.cos(np.linspace(0, 1.5, 40))],
    "lr of a stopped run, 9.8e-4 to 1e-3": np.linspace(9.8e-4, 1e-3, 40),
    "lr 0.05 to 4.8 (LARS)": np.linspace(0.05, 4.8, 40),
    "τ 0.98966 to 1": 1 - (1 - 0.98966) * np.cos(np.linspace(0, math.pi / 2, 40)),
    "τ 0.99 to 0.99019 (a few hundred steps)": np.linspace(0.99, 0.99019, 40),
    "τ 0.996 to 1": np.linspace(0.996, 1.0, 40),
}


@pytest.mark.parametrize("values", SERIES.values(), ids=SERIES.keys())
def test_ticks_are_round_distinct_short_and_span_the_curve(values):
    ticks = charts.nice_ticks(values)
    labels = charts.tick_labels(ticks)
    assert 2 <= len(ticks) <= 6
    assert all(values.min() - 1e-15 <= t <= values.max() + 1e-15 for t in ticks)  # on the curve's own range
    assert max(ticks) - min(ticks) >= 0.4 * (values.max() - values.min())  # and across most of it
    assert len(set(labels)) == len(labels), labels
    assert max(map(len, labels)) <= 7, labels
    step = ticks[1] - ticks[0]
    for label, tick in zip(labels, ticks, strict=True):
        assert float(label) == pytest.approx(tick, abs=1e-3 * step)  # each label says where its tick is


def test_learning_rates_read_in_scientific_notation_and_tau_in_decimals():
    assert charts.tick_labels(charts.nice_ticks(SERIES["lr warm-up to 2e-3, then cosine"])) == \
        ["0", "5e-4", "1e-3", "1.5e-3", "2e-3"]
    assert charts.tick_labels(charts.nice_ticks(SERIES["τ 0.98966 to 1"])) == ["0.990", "0.995", "1.000"]


def test_a_flat_or_empty_series_gets_one_tick_or_none():
    assert charts.tick_labels(charts.nice_ticks([2e-3] * 5)) == ["2e-3"]
    assert charts.nice_ticks([]) == [] and charts.tick_labels([]) == []
    assert charts.nice_ticks([float("nan"), 0.5]) == [0.5]


def _run_events(steps: int = 60) -> list[dict]:
    events = []
    for i in range(1, steps + 1):
        progress = i / steps
        events.append({"kind": "step", "step": i, "loss": 2 - progress, "img_per_s": 900.0,
                       "lr": 2e-3 * (0.75 + 0.25 * math.cos(math.pi * progress)),  # 2e-3 down to 1.5e-3
                       "tau": 1 - (1 - 0.98966) * math.cos(math.pi / 2 * progress),
                       "collapse_std": 0.15, "collapse_reference": 0.17})
    return events


def test_the_training_chart_labels_its_learning_rate_and_tau_axes_readably():
    fig = charts.training_figure(_run_events(), get_stage("byol"))
    traces = {t.name: t for t in fig.data}
    for name, longest in (("learning rate", 6), ("τ (target EMA, right axis)", 5)):
        trace = traces[name]
        axis = fig.layout[f"yaxis{trace.yaxis[1:]}"]
        labels = list(axis.ticktext)
        assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
        assert max(map(len, labels)) <= longest, labels
        assert min(trace.y) <= min(axis.tickvals) and max(axis.tickvals) <= max(trace.y)
    tau_axis = fig.layout[f"yaxis{traces['τ (target EMA, right axis)'].yaxis[1:]}"]
    assert tau_axis.side == "right" and tau_axis.overlaying  # τ keeps its own axis beside the learning rate


@pytest.mark.parametrize("runs", [2, 5, 12])
def test_the_compare_legend_sits_above_the_plot_which_keeps_its_height(runs):
    curves = [(f"byol-digits-a-rather-long-run-name-{i} · ab{i:02d}", "BYOL kNN", [1, 2, 3], [0.5, 0.6, 0.7])
              for i in range(runs)]
    fig = charts.accuracy_curves(curves)
    layout = fig.layout
    assert layout.legend.yanchor == "bottom" and layout.legend.y >= 1.0  # above the plot, away from "epoch"
    assert layout.legend.orientation == "v"  # one run a line: the height it takes is known
    assert layout.margin.t >= charts.LEGEND_LINE_PX * runs
    plot_px = layout.height - layout.margin.t - layout.margin.b
    single = charts.accuracy_curves(curves[:1]).layout
    assert plot_px == single.height - single.margin.t - single.margin.b  # the legend never squeezes the plot


def test_the_runs_tables_name_column_fits_the_longest_name():
    names = ["", "byol-digits", "a name a person typed that goes on for a while: ninety characters long or so"]
    rows = [{"run": f"r{i}", "name": n} for i, n in enumerate(names)]
    config = tables.runs_table_columns(rows)
    width = config["name"]["width"]
    assert isinstance(width, int) and width >= tables.NAME_CHAR_PX * len(names[-1])
    assert width > 500  # wider than Streamlit's automatic limit, which cut this name off
    assert config["name"]["help"]
    assert config["accuracy"]["type_config"]["format"] == "percent"
    short = tables.runs_table_columns([{"name": "a"}])["name"]["width"]
    longest = tables.runs_table_columns([{"name": "x" * MAX_NAME_CHARS}])["name"]["width"]
    assert short < width <= longest <= tables.NAME_COLUMN_PX[1]
    assert longest >= tables.NAME_CHAR_PX * MAX_NAME_CHARS  # any name a run can be given fits

"""Figures kept between page runs: built once per distinct input, never changed by a later call."""

from __future__ import annotations

import threading

import numpy as np
import plotly.graph_objects as go

from dashboard import explorer_chart, figure_memo


def _counting_builder():
    built = []

    @figure_memo.memo_figure
    def build(values, height=300):
        built.append(list(values))
        return go.Figure(go.Bar(y=list(values)), layout={"height": height})

    return build, built


def test_equal_inputs_build_once_and_other_inputs_build_their_own():
    build, built = _counting_builder()
    first = build([1, 2, 3])
    assert build([1, 2, 3]) is first and len(built) == 1
    other = build([1, 2, 4])
    assert other is not first and list(other.data[0].y) == [1, 2, 4]
    assert build([1, 2, 3], height=500).layout.height == 500 and len(built) == 3  # a keyword is part of the input


def test_an_input_that_cannot_be_pickled_is_built_every_time():
    built = []
    lock = threading.Lock()  # cannot be pickled

    @figure_memo.memo_figure
    def with_lock(values, guard):
        built.append(values)
        return go.Figure()

    with_lock([1], lock)
    with_lock([1], lock)
    assert len(built) == 2


def test_only_the_newest_figures_are_kept(monkeypatch):
    monkeypatch.setattr(figure_memo, "KEPT_FIGURES", 2)
    build, built = _counting_builder()
    build([1]), build([2]), build([3])
    build([3]), build([2])
    assert len(built) == 3  # both still kept
    build([1])
    assert len(built) == 4  # the oldest was dropped
    assert len(figure_memo._KEPT) <= 2


def test_a_filtered_scatter_drawn_twice_points_at_the_same_rows():
    rng = np.random.default_rng(0)
    xy, labels = rng.normal(size=(50, 2)), rng.integers(0, 3, 50)
    shown = np.arange(10, 40)
    first = explorer_chart.filtered_scatter(xy, labels, ["a", "b", "c"], shown)
    rows = sorted(int(r) for t in first.data if t.customdata is not None for r in t.customdata)
    again = explorer_chart.filtered_scatter(xy, labels, ["a", "b", "c"], shown)
    assert again is first  # kept, and not remapped a second time
    assert sorted(int(r) for t in again.data if t.customdata is not None for r in t.customdata) == rows
    assert rows == list(range(10, 40))

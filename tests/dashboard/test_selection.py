"""Selections on the Embeddings page: plot events to rows, class mix, the scatter's overlays, and the page itself."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from byol_core.config import DataConfig
from dashboard import charts, selection
from tests.app_helpers import _app, _errors, _page, _tiny_cfg

# A lasso over three points as Streamlit delivers it: scattergl traces give customdata as a scalar,
# plotly express figures as a list; overlay traces (the selection ring) repeat a row.
LASSO_EVENT = {"selection": {
    "points": [{"curve_number": 0, "point_number": 4, "point_index": 4, "x": 0.1, "y": 0.2, "customdata": 17},
               {"curve_number": 2, "point_number": 0, "point_index": 0, "x": 0.3, "y": 0.1, "customdata": [3]},
               {"curve_number": 1, "point_number": 9, "point_index": 9, "x": 0.2, "y": 0.4, "customdata": 8},
               {"curve_number": 3, "point_number": 1, "point_index": 1, "x": 0.1, "y": 0.2, "customdata": 17},
               {"curve_number": 4, "point_index": 2, "x": 0.0, "y": 0.0}],
    "point_indices": [4, 0, 9, 1, 2], "box": [],
    "lasso": [{"type": "lasso", "xref": "x", "yref": "y", "x": [0, 1, 1, 0], "y": [0, 0, 1, 1]}]}}


def test_rows_come_from_customdata_once_each_and_never_from_point_index():
    assert selection.rows_from_event(LASSO_EVENT) == [3, 8, 17]
    click = {"selection": {"points": [{"point_index": 2, "customdata": [5.0]}], "point_indices": [2],
                           "box": [], "lasso": []}}
    assert selection.rows_from_event(click) == [5]
    empty = {"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}
    for nothing in (None, {}, empty, {"selection": None}, {"selection": {"points": [{"customdata": []}, "junk"]}}):
        assert selection.rows_from_event(nothing) == []


def test_a_click_picks_one_image_a_lasso_a_group_and_a_deselect_ends_the_group():
    state: dict = {}
    keys = {"pick_key": "pick", "selection_key": "group"}
    selection.record(state, selection.rows_from_event(LASSO_EVENT), "k", **keys)
    assert state == {"group": ("k", (3, 8, 17))}
    selection.record(state, [5], "k", **keys)  # a click (or a lasso around one point): the neighbour view
    assert state == {"pick": ("k", 5)}
    selection.record(state, [1, 2], "k", **keys)
    assert state == {"group": ("k", (1, 2))}
    selection.record(state, [4], "k", **keys)
    selection.record(state, [], "k", **keys)  # a deselect keeps the pick
    assert state == {"pick": ("k", 4)}
    selection.record(state, [1, 2], "k", **keys)
    selection.record(state, [], "k", **keys)
    assert state == {}


def test_a_stored_selection_applies_only_to_the_images_it_was_made_on():
    key = selection.data_key(DataConfig(name="digits"), 100)
    assert key != selection.data_key(DataConfig(name="digits"), 50)
    assert key != selection.data_key(DataConfig(name="fashion-mnist"), 100)
    assert selection.applies((key, (3, 8, 17)), key, 100) == [3, 8, 17]
    assert selection.applies((key, (3, 8, 170)), key, 100) == [3, 8]  # stale rows never index past the set
    assert selection.applies((key, (300,)), key, 100) is None
    assert selection.applies(("other", (3,)), key, 100) is None
    assert selection.applies(None, key, 100) is None


def test_class_mix_counts_shares_and_right_predictions_per_encoder():
    labels = np.array([0, 1, 1, 2, 1, 0, 2, 2])
    right_a = np.array([1, 1, 0, 1, 1, 0, 0, 1], dtype=bool)
    mix = selection.class_mix(labels, ["cat", "dog", "owl"], [1, 2, 3, 4, 5], {"A": right_a})
    assert mix == [{"class": "dog", "images": 3, "share": 0.6, "correct · A": 2},
                   {"class": "cat", "images": 1, "share": 0.2, "correct · A": 0},
                   {"class": "owl", "images": 1, "share": 0.2, "correct · A": 1}]
    assert selection.class_mix(np.array([-1, 0]), ["cat"], [0, 1]) == [
        {"class": "unlabelled", "images": 1, "share": 0.5}, {"class": "cat", "images": 1, "share": 0.5}]
    assert selection.correct_counts(right_a, [1, 2, 3]) == (2, 1)
    assert selection.correct_counts(right_a) == (5, 3)
    assert selection.other_class(labels, 1, [4, 0, 2, 6]) == [0, 6]


def test_embedding_scatter_colours_by_groups_and_draws_overlays():
    xy = np.arange(12, dtype=np.float32).reshape(6, 2)
    labels = np.array([0, 1, 0, 1, 2, 2])
    plain = charts.embedding_scatter(xy, labels, ["a", "b", "c"])  # the old call: one trace per class
    assert [t.name for t in plain.data] == ["a", "b", "c"] and plain.layout.dragmode is None

    groups = np.array(["correct", "incorrect", "correct", "correct", "incorrect", "correct"])
    fig = charts.embedding_scatter(xy, labels, ["a", "b", "c"], selected=1, colour_by=groups,
                                   colours={"correct": "#16a34a", "incorrect": "#dc2626"}, highlight=[0, 2, 9],
                                   marked=[3], dragmode="lasso")
    traces = {t.name: t for t in fig.data}
    assert list(traces) == ["correct", "incorrect", "selection", "other class", "selected"]
    assert list(traces["incorrect"].customdata) == [1, 4] and list(traces["incorrect"].text) == ["b", "c"]
    assert traces["incorrect"].marker.color == "#dc2626"
    assert list(traces["selection"].customdata) == [0, 2]  # row 9 does not exist
    assert list(traces["other class"].customdata) == [3]
    assert fig.layout.dragmode == "lasso" and fig.layout.clickmode == "event+select"
    with pytest.raises(ValueError, match="2 values for 6 points"):
        charts.embedding_scatter(xy, labels, ["a", "b", "c"], colour_by=groups[:2])


# --------------------------------------------------------------------------- the page
def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _rows(figure: dict, name: str) -> list[int]:
    """The customdata (rows) of the trace called ``name``; [] when there is none."""
    trace = next((t for t in figure["data"] if t.get("name") == name), None)
    data = [] if trace is None else trace["customdata"]
    if isinstance(data, dict):  # plotly sends numpy arrays as base64 typed arrays
        data = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return [int(v) for v in data]


def test_the_embeddings_page_shows_a_lasso_selection_and_colours_by_correctness(runs_dir):
    from byol_core.analysis.embeddings import RANDOM_INIT, compute_embeddings, nearest_neighbours, set_predictions
    from byol_core.lab import runner
    from byol_core.lab.plans import plan
    from byol_core.lab.run_store import RunStore

    store = RunStore(runs_dir)
    run = runner.start(plan("byol", _tiny_cfg()), store)
    at = _page(_app(), "views/embeddings.py")
    assert not _errors(at), _errors(at)
    assert at.radio(key="emb.colour").value == "true class"
    n = next(s for s in at.slider if s.key.startswith("emb.n.")).value
    es = compute_embeddings(store, run.id, max_points=n)
    key = selection.data_key(run.read_config()[0].data, len(es))

    assert at.radio(key="emb.mouse").value == "click a point"
    assert {f["layout"]["dragmode"] for f in _figures(at)} == {"pan"}  # a click selects one point

    rows = tuple(range(5, 75))  # what a lasso over 70 points leaves under the shared key
    at.radio(key="emb.mouse").set_value("lasso a group")
    at.session_state["emb.selection"] = (key, rows)
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any(h.value == "Selection: 70 test images" for h in at.subheader)
    mix = at.dataframe[0].value
    expected = selection.class_mix(es.labels, es.classes, list(rows))
    assert list(mix["class"]) == [r["class"] for r in expected] and mix["images"].sum() == 70
    grids = [i.captions[0] for i in at.get("image")]  # one picture per class, in the class mix's order
    shown = {es.classes[c]: int((es.labels[list(rows[:64])] == c).sum()) for c in set(es.labels[list(rows)])}
    assert grids == [f"{r['class']} · " + (f"{shown[r['class']]} of {r['images']} shown"
                                          if shown[r["class"]] < r["images"] else f"{r['images']} images")
                     for r in expected if shown[r["class"]]]
    assert any("showing 64 of 70" in m.value for m in at.markdown)  # capped, and says so
    assert sum("Selection under this encoder" in m.value for m in at.markdown) == 2  # one per encoder
    for figure in _figures(at):  # both plots ring the same 70 images
        assert sorted(_rows(figure, "selection")) == list(rows)
        assert figure["layout"]["dragmode"] == "lasso"

    at.radio(key="emb.colour").set_value("correct / incorrect").run()
    assert not at.exception and not _errors(at), _errors(at)
    predicted = set_predictions(store, es)
    right = predicted == es.labels
    figure = _figures(at)[0]
    assert sorted(_rows(figure, "incorrect")) == np.flatnonzero(~right).tolist()
    share = f"gets {100 * right.mean():.1f}% of them right ({int(right.sum())} correct"
    assert any(share in c.value for c in at.caption), [c.value for c in at.caption]
    mix = at.dataframe[0].value
    assert mix["correct · BYOL kNN"].sum() == int(right[list(rows)].sum())
    assert "correct · random init" in mix.columns
    random = compute_embeddings(store, RANDOM_INIT, reference_run=run.id, max_points=n)
    assert np.array_equal(random.indices, es.indices)  # why one selection fits both plots

    # A click instead: the neighbour view marks neighbours of another class, on the plot and in the strip.
    at.session_state["emb.selection"] = ("stale", rows)
    at.session_state["emb.pick"] = (key, 0)
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any("Selected: class" in m.value for m in at.markdown)
    neighbours = nearest_neighbours(es.features, 0, k=8)
    others = [int(r) for r in neighbours if es.labels[r] != es.labels[0]]
    strip = next(i for i in at.get("image") if len(i.proto.imgs) == 8)
    assert strip.captions == [
        ("≠ " if int(r) in others else "") + es.classes[es.labels[r]] for r in neighbours]
    assert _rows(_figures(at)[0], "other class") == others

    at.button(key="emb.clear").click().run()
    assert not at.exception
    assert "emb.pick" not in at.session_state and "emb.selection" not in at.session_state
    assert at.session_state["emb.plot_gen"] == 1
    assert not any("Selected: class" in m.value for m in at.markdown)

"""The Embeddings page as an explorer: one accuracy per encoder, filters, saved selections, the whole collection."""

from __future__ import annotations

import base64
import json
import threading
import time

import numpy as np
import pandas as pd
import pytest

from byol_core.lab.run_store import RunStore
from byol_core.lab.summary import list_summaries
from dashboard import charts, embedding_panels, embedding_words, explorer_chart, selection
from tests.app_helpers import _app, _errors, _page, _tiny_cfg


# --------------------------------------------------------------------------- words
class _Summary:
    def __init__(self, metric, metric_name="kNN accuracy", run_id="run-1"):
        self.metric, self.metric_name, self.id = metric, metric_name, run_id


def test_one_accuracy_per_encoder_and_the_other_numbers_named_in_words():
    value, about = embedding_words.accuracy(_Summary(0.9333))
    assert value == "93.3%" and "same number as on the Train and Compare pages" in about
    assert embedding_words.accuracy(None)[0] == "–"  # a random init has no run, so no accuracy
    value, about = embedding_words.accuracy(_Summary(None, "test accuracy", "run-2"))
    assert value == "–" and "run-2 has no test accuracy yet" in about
    value, about = embedding_words.separation(0.972)
    assert value == "97.2%" and "a separation score, not a test accuracy" in about
    assert embedding_words.separation(float("nan"))[0] == "–"
    caption = embedding_words.knn_caption(930, 70, scored_rows="test images")
    assert caption.startswith("kNN on these embeddings (the labelled training images vote)")
    assert "gets 93.0% of them right (930 correct, 70 incorrect, of the 1000 labelled test images)" in caption
    assert "not the encoder's accuracy" in caption
    assert "–" in embedding_words.knn_caption(0, 0)


# --------------------------------------------------------------------------- the filtered scatter
def _rows(trace: dict) -> list[int]:
    data = trace.get("customdata")
    if data is None:
        return []
    if isinstance(data, dict):  # numpy arrays travel as base64 typed arrays
        data = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return [int(v) for v in data]


def test_the_filtered_scatter_keeps_rows_and_greys_the_rest():
    xy = np.arange(20, dtype=np.float32).reshape(10, 2)
    labels = np.array([0, 1] * 5)
    shown = np.array([1, 3, 4, 9])
    fig = json.loads(explorer_chart.filtered_scatter(xy, labels, ["a", "b"], shown, highlight=[3, 5, 9],
                                                     selected=4).to_json())
    by_name = {t["name"]: t for t in fig["data"]}
    assert fig["data"][0]["name"] == explorer_chart.FILTERED_OUT and _rows(fig["data"][0]) == []
    assert sorted(_rows(by_name["a"]) + _rows(by_name["b"])) == [1, 3, 4, 9]  # rows of the whole set
    assert sorted(_rows(by_name["selection"])) == [3, 9]  # a ringed row that is filtered out is not drawn
    assert _rows(by_name["selected"]) == [4]
    full = explorer_chart.filtered_scatter(xy, labels, ["a", "b"], None)
    assert explorer_chart.FILTERED_OUT not in {t.name for t in full.data}


def test_few_points_are_drawn_as_svg_and_many_as_webgl(monkeypatch):
    monkeypatch.setattr(charts, "SVG_MAX_POINTS", 30)
    rng = np.random.default_rng(0)
    few, many = rng.normal(size=(30, 2)), rng.normal(size=(31, 2))
    assert {t.type for t in explorer_chart.filtered_scatter(few, np.arange(30) % 3, list("abc"), None,
                                                            selected=2, highlight=[1, 4]).data} == {"scatter"}
    assert {t.type for t in explorer_chart.filtered_scatter(many, np.arange(31) % 3, list("abc"), None,
                                                            selected=2, highlight=[1, 4]).data} == {"scattergl"}
    # A filter over many points: the few shown are SVG, the many greyed out WebGL (underneath, unselectable).
    more = rng.normal(size=(70, 2))
    fig = explorer_chart.filtered_scatter(more, np.arange(70) % 3, list("abc"), np.arange(5))
    assert {t.name: t.type for t in fig.data}[explorer_chart.FILTERED_OUT] == "scattergl"  # 65 grey points
    assert {t.type for t in fig.data if t.name != explorer_chart.FILTERED_OUT} == {"scatter"}


def test_a_big_set_draws_a_sample_but_a_lasso_selects_every_point_inside(monkeypatch):
    monkeypatch.setattr(explorer_chart, "DRAW_MAX", 50)
    monkeypatch.setattr(explorer_chart, "BACKGROUND_MAX", 20)
    grid = np.stack(np.meshgrid(np.arange(20), np.arange(20)), axis=-1).reshape(-1, 2).astype(np.float32)
    labels = np.zeros(len(grid), dtype=np.int64)
    fig = json.loads(explorer_chart.filtered_scatter(grid, labels, ["a"], None, selected=399, marked=[398]).to_json())
    drawn = _rows(next(t for t in fig["data"] if t["name"] == "a"))
    assert 50 <= len(drawn) <= 52 and {398, 399} <= set(drawn)  # the sample keeps the clicked point and its neighbour
    assert explorer_chart.drawn_rows(400, None).tolist() == explorer_chart.drawn_rows(400, None).tolist()  # seeded
    shown = np.arange(0, 400, 2)
    fig = json.loads(explorer_chart.filtered_scatter(grid, labels, ["a"], shown).to_json())
    assert len(_rows(next(t for t in fig["data"] if t["name"] == "a"))) == 50
    grey = next(t for t in fig["data"] if t["name"] == explorer_chart.FILTERED_OUT)
    assert len(grey["x"]["bdata"] if isinstance(grey["x"], dict) else grey["x"]) > 0

    # The event holds only drawn points; the region picks all points inside, among the filtered rows.
    lasso = {"selection": {"points": [{"customdata": 0}], "box": [],
                           "lasso": [{"x": [-0.5, 4.5, 4.5, -0.5], "y": [-0.5, -0.5, 2.5, 2.5]}]}}
    inside = [int(y * 20 + x) for y in range(3) for x in range(5)]
    assert selection.rows_in_region(lasso, grid) == sorted(inside)
    assert selection.rows_in_region(lasso, grid, shown) == sorted(r for r in inside if r % 2 == 0)
    box = {"selection": {"points": [], "box": [{"x": [2.5, 0.5], "y": [0.5, 1.5]}], "lasso": []}}
    assert selection.rows_in_region(box, grid) == [21, 22]
    click = {"selection": {"points": [{"customdata": 7}], "box": [], "lasso": []}}
    assert selection.rows_in_region(click, grid) == [7]  # no region: the clicked rows


# --------------------------------------------------------------------------- the page
def _metrics(at) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for m in at.metric:
        found.setdefault(m.label, []).append(m.value)
    return found


def _figure_rows(at, index: int = 0) -> list[int]:
    figure = json.loads(at.get("plotly_chart")[index].proto.spec)
    return sorted(r for t in figure["data"] if t["name"] not in ("selection", "selected", "other class")
                  for r in _rows(t))


def test_the_page_shows_one_accuracy_filters_and_saves_a_selection(runs_dir):
    from byol_core.lab import runner
    from byol_core.lab.plans import plan

    store = RunStore(runs_dir)
    run = runner.start(plan("byol", _tiny_cfg()), store)
    summary = next(s for s in list_summaries(store) if s.id == run.id)
    at = _page(_app(), "views/embeddings.py")
    assert not _errors(at), _errors(at)
    metrics = _metrics(at)
    # One accuracy per encoder: the run's headline, as on Train and Compare; the random init has none.
    assert metrics["Accuracy"] == [f"{100 * summary.metric:.1f}%", "–"]
    assert [label for label in metrics if "ccuracy" in label] == ["Accuracy"]
    assert len(metrics[embedding_words.SEPARATION_LABEL]) == 2
    assert any(embedding_words.SEPARATION_WORDS in c.value for c in at.caption)

    n = next(s for s in at.slider if s.key.startswith("emb.n.")).value
    every = _figure_rows(at)
    assert every == list(range(n))
    at.multiselect(key="emb.f.classes").set_value([1]).run()
    assert not at.exception and not _errors(at), _errors(at)
    es = embedding_panels._embedding(embedding_panels.embedding_cache_path(store, run.id, max_points=n).as_posix(),
                                     str(store.root), run.id, None, n)
    ones = np.flatnonzero(es.labels == 1).tolist()
    assert _figure_rows(at, 0) == ones and _figure_rows(at, 1) == ones  # both encoders, the same rows
    assert any(f"{len(ones)} of {n} test images pass the filters" in c.value for c in at.caption)

    # Colour by correctness: the kNN line is named in words; the prediction filters come alive.
    at.radio(key="emb.colour").set_value("correct / incorrect").run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any("kNN on these embeddings" in c.value and "of them right" in c.value for c in at.caption)
    at.selectbox(key="emb.f.correct").set_value("incorrect").run()
    assert not at.exception and not _errors(at), _errors(at)

    # Save the filtered points under a name; it lists, shows and exports as CSV.
    at.selectbox(key="emb.f.correct").set_value("all").run()
    at.text_input(key="emb.save.name").set_value("class one").run()
    at.button(key="emb.save").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    saved = list((runs_dir / "_selections").glob("*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["rows"] == ones
    assert at.selectbox(key="emb.saved").value.startswith("class one")
    at.button(key="emb.saved.show").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any(h.value == f"Selection: {len(ones)} test images" for h in at.subheader)

    # Images like one point: its nearest neighbours in the full feature space; exports read back. Only the open tool
    # is drawn: the others' widgets are not on the page.
    assert not any(b.key == "emb.export.parquet" for b in at.button)
    at.session_state["emb.tool"] = "Images like this one"
    at.run()
    at.number_input(key=f"emb.like.row.{n}.None").set_value(0).run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any("most similar images" in m.value for m in at.markdown)
    at.session_state["emb.tool"] = "Export"
    at.run()
    at.button(key="emb.export.parquet").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    written = list((runs_dir / "_exports").rglob("embeddings.parquet"))
    assert len(written) == 1
    frame = pd.read_parquet(written[0])
    assert len(frame) == n and {"name", "label", "class", "predicted", "x", "y", "vector"} <= set(frame.columns)
    at.button(key="emb.export.tsv").click().run()
    assert not at.exception and len(list((runs_dir / "_exports").rglob("*.tsv"))) == 2

    # A confusion cell (when the tiny run confuses any) filters the plots to its images.
    at.session_state["emb.tool"] = "Confusion matrix"
    at.run()
    if any(s.key == "emb.cell" for s in at.selectbox):
        at.button(key="emb.cell.filter").click().run()
        assert not at.exception and not _errors(at)
        true, = at.multiselect(key="emb.f.classes").value
        guess, = at.multiselect(key="emb.f.predicted").value
        assert true != guess and _figure_rows(at)  # the cell's images, and only those, are drawn


def test_a_big_collection_embeds_in_the_background_with_progress(runs_dir, monkeypatch):
    from byol_core.analysis import embeddings
    from byol_core.lab import runner
    from byol_core.lab.plans import plan

    store = RunStore(runs_dir)
    runner.start(plan("byol", _tiny_cfg()), store)
    monkeypatch.setattr(embedding_panels, "WAIT_MAX_POINTS", 10)  # anything over 10 images goes to the background
    monkeypatch.setattr(embeddings.sets, "EMBED_CHUNK", 64)
    go_on = threading.Event()  # holds the background work until the page has shown its progress
    real = embedding_panels.compute_embeddings

    def held(*args, **kwargs):
        go_on.wait(600)
        return real(*args, **kwargs)

    monkeypatch.setattr(embedding_panels, "compute_embeddings", held)
    at = _page(_app(), "views/embeddings.py")
    at.radio(key="emb.scope").set_value("whole collection").run()
    assert not at.exception and not _errors(at), _errors(at)
    slider = next(s for s in at.slider if s.key.startswith("emb.n.all."))
    total = int(slider.max)
    slider.set_value(total).run()
    assert not at.exception and not _errors(at), _errors(at)
    bars = [p.proto.text for p in at.get("progress")]
    assert len(bars) == 2 and all(f"Embedding {total:,} images" in b and "in the background" in b for b in bars)
    assert not at.get("plotly_chart")  # nothing drawn yet, and the page answered
    go_on.set()
    deadline = time.time() + 600
    while time.time() < deadline and not any("images ·" in c.value for c in at.caption):
        time.sleep(0.5)
        at.run()
        assert not at.exception and not _errors(at), _errors(at)
    assert any(f"{total} images · PCA" in c.value for c in at.caption), ([c.value for c in at.caption], total)
    assert len(list((runs_dir / "_cache").glob("embeddings-*.npz"))) >= 2  # cached on disk for the next visit


@pytest.mark.parametrize("name", ["", "a\nb"])
def test_a_bad_selection_name_is_an_error_not_a_traceback(runs_dir, name):
    from byol_core.lab import runner
    from byol_core.lab.plans import plan

    store = RunStore(runs_dir)
    runner.start(plan("byol", _tiny_cfg()), store)
    at = _page(_app(), "views/embeddings.py")
    at.multiselect(key="emb.f.classes").set_value([0]).run()
    at.text_input(key="emb.save.name").set_value(name).run()
    at.button(key="emb.save").click().run()
    assert not at.exception
    assert any("Not saved" in e for e in _errors(at))


def _cell_page():
    import numpy as np
    import torch

    from byol_core.analysis.error_analysis import Predictions
    from dashboard import error_analysis

    pred = Predictions(np.array([0, 1, 1, 0, 0, 2]), np.array([0, 0, 1, 1, 1, 2]), ["a", "b", "c"], "kNN")
    error_analysis.cell_images(pred, torch.zeros(6, 1, 8, 8, dtype=torch.uint8), key="cell")


def test_a_confusion_cell_opens_its_images():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_cell_page, default_timeout=60).run()
    assert not at.exception
    box = at.selectbox(key="cell")
    assert box.options[1:] == ["true b → predicted a · 2 images", "true a → predicted b · 1 image"]
    box.set_value("true b → predicted a · 2 images").run()
    assert not at.exception
    assert at.get("image")[0].captions == ["test #3", "test #4"]

"""The studies' shared tables: per-image correctness kept compactly, intervals and declared comparisons from it,
the fixed method order, and results saved before any of this still loading and rendering."""

from __future__ import annotations

import json

import numpy as np
import pytest

from byol_core import stats
from byol_core.lab.comparison import METHOD_ORDER, PRIMARY, SECONDARY
from byol_core.presets import get_preset
from byol_core.studies import ablation, tables
from byol_core.studies.experiment import ExperimentResult, ExperimentRow
from byol_core.studies.sweep import SweepResult
from tests.app_helpers import _app, _page

IMAGES = 200


def _correct(rng: np.random.Generator, accuracy: float) -> np.ndarray:
    return rng.random(IMAGES) < accuracy


def test_per_image_correctness_packs_to_text_and_back_exactly():
    rng = np.random.default_rng(0)
    for images in (1, 7, 8, 9, 128, 10_000):
        correct = rng.random(images) < 0.7
        text = tables.pack_correct(correct)
        assert isinstance(text, str) and len(text) <= 4 * ((images + 7) // 8 + 2) // 3 + 4  # one bit an image
        assert np.array_equal(tables.unpack_correct(text, images), correct)
    with pytest.raises(ValueError, match="bits for 100 test images"):
        tables.unpack_correct(tables.pack_correct(np.ones(8, bool)), 100)
    with pytest.raises(ValueError, match="not base64"):
        tables.unpack_correct("not base64!", 8)
    # A damaged row loses its per-image scores, never its values: it falls back to the seeds alone.
    assert tables.read_correct({"correct": ["??"], "images": 8}, 1) == [None]
    assert tables.read_correct({"values": [0.5]}, 1) == [None]


def _sweep(seeds: int, gap: float) -> SweepResult:
    """A sweep of every method at two shares, each seed with synthetic per-image correctness; the linear probe
    ``gap`` better than scratch on every seed."""
    rng = np.random.default_rng(1)
    result = SweepResult("s", "digits", "tiny", [0.1, 1.0], list(range(seeds)), test_images=IMAGES)
    for fraction in result.label_fractions:
        for method in reversed(METHOD_ORDER):  # added worst first: the table's order must not depend on it
            base = 0.6 + (gap if method == PRIMARY[0] else 0.0)
            for seed in result.seeds:
                result.row(method, fraction).add(seed, 0.0, None, _correct(rng, base + 0.02 * seed))
    return result


def test_sweep_rows_and_comparisons_come_from_per_image_correctness_and_survive_json():
    result = _sweep(seeds=3, gap=0.3)
    assert [r.method for r in result.rows[::2]] == list(METHOD_ORDER)  # the fixed order, by share within
    stored = json.loads(json.dumps(result.to_dict()))
    for row, d in zip(result.rows, stored["rows"], strict=True):
        # The value given to add() is replaced by the share of images right: the row and its interval agree.
        assert d["values"] == [float(c.mean()) for c in row.correct]
        summary = stats.accuracy_summary(np.stack(row.correct))
        assert (d["mean"], d["ci95"], d["interval"], d["n"]) == (summary.mean, list(summary.ci),
                                                                 "seeds and test images", 3)
    again = SweepResult.from_dict(stored)
    assert again.to_dict() == stored  # correctness read back bit for bit, comparisons computed the same
    primary = [c for c in stored["comparisons"] if c["primary"]]
    assert [(c["a"], c["b"], c["label_fraction"]) for c in primary] == [(*PRIMARY, 0.1), (*PRIMARY, 1.0)]
    assert all(c["significant"] and c["verdict"].startswith(f"{PRIMARY[0]} better") for c in primary)
    secondary = [c for c in stored["comparisons"] if not c["primary"] and c["label_fraction"] == 0.1]
    assert [(c["a"], c["b"]) for c in secondary] == list(SECONDARY)
    assert [c["adjusted_p"] for c in secondary] == pytest.approx(stats.holm([c["p"] for c in secondary]))
    assert all(("Holm-adjusted p" in c["verdict"]) for c in secondary)
    assert stored["seed_note"] is None and "too few" not in result.table()
    table = result.table()
    assert table.index("primary: BYOL linear probe") < table.index("secondary: BYOL fine-tuned")


def test_fewer_than_three_seeds_print_the_note():
    result = _sweep(seeds=2, gap=0.0)
    assert result.to_dict()["seed_note"].startswith("2 seeds: too few to read this interval")
    assert result.table().splitlines()[-1].startswith("2 seeds: too few")


def test_experiment_table_lists_methods_in_the_fixed_order_whatever_their_accuracies():
    rng = np.random.default_rng(2)
    # Accuracies rising along METHOD_ORDER and rows given in reverse: best first would reverse the table.
    rows = [ExperimentRow(m, None, None, 1.0, _correct(rng, 0.3 + 0.1 * i)) for i, m in enumerate(METHOD_ORDER)]
    for row in rows:
        row.accuracy = tables.value_of(row.correct)
    result = ExperimentResult("e", "digits", 0.1, 26, IMAGES, rows[::-1])
    lines = result.table().splitlines()
    assert [line[:30].strip() for line in lines[2:2 + len(METHOD_ORDER)]] == list(METHOD_ORDER)
    assert [r["method"] for r in result.to_dict()["rows"]] == list(METHOD_ORDER)
    for line, row in zip(lines[2:2 + len(rows)], rows, strict=True):
        summary = row.summary()
        assert summary.method == "wilson" and tables.cell(summary) in line  # one decimal, with its interval
    primary, *secondary = result.to_dict()["comparisons"]
    assert primary["test"] == "exact McNemar" and (primary["a"], primary["b"]) == PRIMARY
    assert len(secondary) == len(SECONDARY) and all(c["adjusted_p"] is not None for c in secondary)


OLD_SWEEP = {  # as sweeps wrote it before per-image scores: values and a t-interval over seeds
    "run_id": "old", "dataset": "digits", "config_name": "tiny", "label_fractions": [0.5], "seeds": [0, 1, 2],
    "test_images": 128, "val_images": 20, "byol_runs": ["b0", "b1", "b2"], "wall_seconds": 3.0, "confidence": 0.95,
    "rows": [{"method": m, "label_fraction": 0.5, "labelled_images": 128, "n": 3, "mean": v, "std": 0.01,
              "ci95": [v - 0.02, v + 0.02], "values": [v - step, v, v + step], "seeds": [0, 1, 2],
              "run_ids": [None] * 3}
             for m, v, step in ((PRIMARY[0], 0.8, 0.01), (PRIMARY[1], 0.6, 0.02), ("raw-pixel kNN", 0.9, 0.01))]}


def test_an_old_sweep_without_correctness_still_loads_and_renders():
    result = SweepResult.from_dict(OLD_SWEEP)
    assert all(c is None for r in result.rows for c in r.correct)
    table = result.table()
    assert "over seeds only (no per-image scores saved" in table and "80.0% ± " in table
    d = result.to_dict()
    assert [r["values"] for r in d["rows"]] == [r["values"] for r in OLD_SWEEP["rows"]]
    [primary] = d["comparisons"]  # the secondary pairs lack an arm here
    assert primary["primary"] and primary["test"] == "paired t" and primary["mean"] == pytest.approx(0.2)


def test_an_ablation_drop_pairs_images_where_runs_saved_them_and_seeds_where_not():
    rng = np.random.default_rng(3)
    result = ablation.AblationResult("a", "digits", [0, 1, 2], 26, IMAGES)
    for seed in result.seeds:
        for augmentation, accuracy, step in ((ablation.FULL, 0.8, 0.02), (ablation.NO_COLOUR, 0.7, 0.01)):
            result.cell("byol", augmentation, "knn").add(seed, 0.0, f"r{seed}", _correct(rng, accuracy))
            result.cell("byol", augmentation, "linear").add(seed, accuracy + step * seed, f"p{seed}", None)
    drops = {evaluation: d for _m, evaluation, d in result.drops()}
    assert drops["knn"].test == "seeds and test images" and drops["linear"].test == "paired t"
    full, bare = (result.cell("byol", a, "knn") for a in (ablation.FULL, ablation.NO_COLOUR))
    expected = stats.difference(np.stack(list(full.correct.values())), np.stack(list(bare.correct.values())))
    assert drops["knn"].difference.ci == expected.difference.ci
    stored = json.loads(json.dumps(result.to_dict()))
    again = ablation.AblationResult.from_dict(stored)
    assert again.to_dict() == stored and np.array_equal(again.cell("byol", "full", "knn").correct[1], full.correct[1])


def test_a_row_of_numbers_alone_reads_as_stored():
    s = tables.row_summary({"method": "m", "n": 2, "mean": 0.4258, "std": 0.105, "ci95": [-0.517, 1.369]})
    assert (s.n, s.mean, s.ci, s.method) == (2, 0.4258, (-0.517, 1.369), "t")
    assert tables.cell(s) == "42.6% (0.0 to 100.0)"
    assert tables.row_summary({"method": "m"}) is None


@pytest.mark.usefixtures("runs_dir")
def test_the_compare_page_shows_an_old_sweep_with_its_primary_verdict_and_the_seed_note(runs_dir):
    from byol_core.lab.run_store import RunStore

    store = RunStore(runs_dir)
    run = store.create("sweep", get_preset("tiny"), stage="sweep")
    two_seeds = {**OLD_SWEEP, "run_id": run.id, "seeds": [0, 1],
                 "rows": [{**r, "n": 2, "values": r["values"][:2], "seeds": [0, 1], "run_ids": [None] * 2}
                          for r in OLD_SWEEP["rows"]]}
    run.set_status("finished", results=two_seeds)
    at = _page(_app(), "views/compare.py")
    assert at.selectbox(key="compare.study").value == run.id
    markdown = " | ".join(m.value for m in at.markdown)
    assert f"**50% of labels**: {PRIMARY[0]} - {PRIMARY[1]}: +20.5" in markdown
    assert any(w.value.startswith("2 seeds: too few to read this interval") for w in at.warning)
    table = at.dataframe[-1].value
    assert list(table["method"]) == [PRIMARY[0], PRIMARY[1], "raw-pixel kNN"]
    assert all(" to " in cell or "±" in cell for cell in table["accuracy (95% CI)"])

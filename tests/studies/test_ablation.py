"""The colour ablation: every arm's seeds and intervals, and a failure that says why."""

import json

import pytest

from byol_core.cli import main
from byol_core.lab.stages import stage_of_record
from byol_core.presets import get_preset
from byol_core.studies.ablation import ABLATION_KIND, augmentation_overrides

ONE_STEP = {"byol.optim.epochs": 0.25}  # tiny: 256 images at batch 64, so a quarter epoch is one step


def test_no_colour_turns_off_jitter_and_grayscale_on_both_views_only():
    assert augmentation_overrides("full") == {}
    off = augmentation_overrides("no-colour")
    assert off == {f"augment.view{v}.{k}": 0.0 for v in (1, 2) for k in ("jitter_p", "grayscale_p")}
    with pytest.raises(ValueError, match="no-colour"):
        augmentation_overrides("no-blur")


def test_the_colour_ablation_gives_every_arm_its_seeds_and_intervals(tmp_path, store):
    out = tmp_path / "ablation.json"
    rc = main(["ablation", "--preset", "tiny", "--seeds", "2", "--json", str(out), "--runs-dir", str(store.root),
               "--no-progress", "--set", "byol.optim.epochs=0.25", "--set", "supervised.linear_optim.epochs=1"])
    assert rc == 0
    result = json.loads(out.read_text())
    arms = {(r["method"], r["augmentation"], r["evaluation"]) for r in result["rows"]}
    assert arms == {(m, a, e) for m in ("byol", "simclr") for a in ("full", "no-colour") for e in ("knn", "linear")}
    for row in result["rows"]:
        assert row["n"] == 2 and len(row["values"]) == 2 and row["seeds"] == [0, 1]
        low, high = row["ci95"]
        assert low <= row["mean"] <= high and row["mean"] == pytest.approx(sum(row["values"]) / 2)
    assert {(d["method"], d["evaluation"]) for d in result["drops"]} == {
        (m, e) for m in ("byol", "simclr") for e in ("knn", "linear")}
    for drop in result["drops"]:
        full, bare = ({r["augmentation"]: r for r in result["rows"]
                       if (r["method"], r["evaluation"]) == (drop["method"], drop["evaluation"])}[a]
                      for a in ("full", "no-colour"))
        assert drop["n"] == 2 and drop["mean"] == pytest.approx(full["mean"] - bare["mean"])
        assert drop["ci95"][0] <= drop["mean"] <= drop["ci95"][1]

    summary = store.get(result["run_id"])
    assert summary.read_record()["kind"] == ABLATION_KIND
    assert summary.read_status()["state"] == "finished" and summary.read_status()["results"]["rows"]
    # Every arm is a normal run: 2 seeds x 2 methods x 2 augmentations pretraining runs, each probed once.
    by_stage: dict[str, list] = {}
    for run in store.list():
        by_stage.setdefault(stage_of_record(run.read_record()), []).append(run)
    assert len(by_stage["byol"]) == len(by_stage["simclr"]) == 4 and len(by_stage["linear"]) == 8
    for run in by_stage["byol"] + by_stage["simclr"]:
        cfg = run.read_config()[0]
        no_colour = "no-colour" in cfg.name
        for view in (cfg.augment.view1, cfg.augment.view2):
            assert (view.jitter_p == 0.0 and view.grayscale_p == 0.0) == no_colour


def test_an_ablation_that_fails_says_why(store, monkeypatch):
    from byol_core.lab import runner
    from byol_core.studies import ablation

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(runner, "start", broken)  # every run the ablation starts
    with pytest.raises(RuntimeError, match="disk full"):
        ablation.run_ablation(get_preset("tiny"), store, seeds=1)
    (run,) = store.list()
    assert run.read_record()["kind"] == ABLATION_KIND
    status = run.read_status()
    assert status["state"] == "failed" and "disk full" in status["error"]

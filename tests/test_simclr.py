"""SimCLR: the NT-Xent loss, the ``simclr`` stage as a source for other stages, and the colour ablation."""

import json
import math
import threading

import pytest
import torch

from byol_core import runner
from byol_core.ablation import ABLATION_KIND, augmentation_overrides
from byol_core.cli import main
from byol_core.embeddings.sources import encoder_from_source
from byol_core.losses import nt_xent_loss
from byol_core.plans import plan
from byol_core.presets import get_preset
from byol_core.stages import get_stage, stage_of_record

ONE_STEP = {"byol.optim.epochs": 0.25}  # tiny: 256 images at batch 64, so a quarter epoch is one step


def test_nt_xent_equals_the_hand_computed_value():
    # Views a0=(1,0), a1=(0,1), b0=(1,0), b1=(-1,0); a_i and b_i are positives; scaled inputs are normalised.
    z_1 = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    z_2 = torch.tensor([[1.0, 0.0], [-5.0, 0.0]])
    t = 0.5  # cosines are divided by t, so each exponent below is 2x the cosine
    a0 = -math.log(math.exp(2) / (math.exp(0) + math.exp(2) + math.exp(-2)))  # a0 vs a1, b0 (positive), b1
    a1 = math.log(3)  # cosine 0 with every other view: its positive is one of three equal logits
    b0 = a0  # b0 vs a0 (positive), a1, b1: the same cosines as a0's
    b1 = -math.log(1 / (math.exp(-2) + 1 + math.exp(-2)))  # b1 vs a0, a1 (positive), b0
    expected = (a0 + a1 + b0 + b1) / 4
    assert nt_xent_loss(z_1, z_2, temperature=t).item() == pytest.approx(expected, rel=1e-6)
    # Symmetric: swapping the views changes nothing.
    assert nt_xent_loss(z_2, z_1, temperature=t).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_is_lower_for_identical_views_than_for_unrelated_ones():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(16, 32, generator=gen)
    unrelated = torch.randn(16, 32, generator=gen)
    assert nt_xent_loss(z, z, 0.1) < nt_xent_loss(z, unrelated, 0.1)


def test_nt_xent_rejects_mismatched_batches_and_a_non_positive_temperature():
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(torch.randn(4, 8), torch.randn(4, 8), temperature=0.0)


def test_a_simclr_run_is_a_source_for_the_probe_the_knn_stage_and_embeddings(store):
    spec = plan("simclr", get_preset("tiny"), overrides=ONE_STEP)
    run = runner.start(spec, store)
    status = run.read_status()
    assert status["state"] == "finished", status.get("error")
    assert run.encoder_path.is_file()
    assert stage_of_record(run.read_record()) == "simclr" and get_stage("simclr").pretraining
    knn = get_stage("simclr").headline(status["results"])
    assert knn is not None and 0.0 <= knn <= 1.0
    assert status["results"]["step"] == status["results"]["total_steps"] == 1
    steps = [e for e in run.read_metrics() if e.get("kind") == "step"]
    assert steps and steps[-1]["stage"] == "simclr" and math.isfinite(steps[-1]["loss"])

    probe = runner.start(plan("linear", spec.config, source_run=run.id), store)
    probe_status = probe.read_status()
    assert probe_status["state"] == "finished", probe_status.get("error")
    assert 0.0 <= probe_status["results"]["test_accuracy"] <= 1.0
    assert probe_status["results"]["from_run"] == run.id
    evaluated = runner.start(plan("knn", spec.config, source_run=run.id), store)
    assert evaluated.read_status()["results"]["knn_accuracy"] == pytest.approx(knn)  # the same encoder, scored alike
    runner.check_source(store, plan("finetune", spec.config, source_run=run.id))  # accepted as a fine-tune source
    encoder, cfg = encoder_from_source(store, run.id)
    assert encoder(torch.zeros(2, 3, 16, 16)).shape[0] == 2 and cfg.seed == spec.config.seed


def test_a_stopped_simclr_run_resumes_to_its_planned_step(store):
    stop = threading.Event()

    def stop_after_first_step(event):
        if event.get("kind") == "step":
            stop.set()

    spec = plan("simclr", get_preset("tiny"), overrides={"byol.optim.epochs": 0.5, "runtime.log_every": 1})
    run = runner.start(spec, store, callbacks=[stop_after_first_step], stop_event=stop)
    assert run.read_status()["state"] == "stopped" and run.load_checkpoint()["step"] == 1
    runner.resume(store, run.id)
    status = run.read_status()
    assert status["state"] == "finished" and status["results"]["step"] == status["results"]["total_steps"] == 2
    assert [e["step"] for e in run.read_metrics() if e.get("kind") == "step"] == [1, 2]  # each step logged once


def test_pretrain_takes_the_method(tmp_path):
    runs = tmp_path / "runs"
    rc = main(["pretrain", "--method", "simclr", "--preset", "tiny", "--runs-dir", str(runs), "--no-progress",
               "--set", "byol.optim.epochs=0.25"])
    assert rc == 0
    (folder,) = runs.iterdir()
    assert json.loads((folder / "config.json").read_text())["stage"] == "simclr"


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
    from byol_core import ablation

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ablation.runner, "start", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ablation.run_ablation(get_preset("tiny"), store, seeds=1)
    (run,) = store.list()
    assert run.read_record()["kind"] == ABLATION_KIND
    status = run.read_status()
    assert status["state"] == "failed" and "disk full" in status["error"]

"""SimCLR: the NT-Xent loss and the ``simclr`` stage as a source for other stages."""

import json
import math
import threading

import pytest
import torch

from byol_core.analysis.embeddings.sources import encoder_from_source
from byol_core.cli import main
from byol_core.lab import runner
from byol_core.lab.plans import plan
from byol_core.lab.stages import get_stage, stage_of_record
from byol_core.methods.losses import nt_xent_loss
from byol_core.presets import get_preset

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







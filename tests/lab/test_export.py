"""Export: the encoder file and its loading snippet reproduce the run's embeddings for each backbone family."""

import pytest
import torch

from byol_core.config import with_overrides
from byol_core.data import load_data
from byol_core.lab.export import bundle_bytes, encoder_bundle, loading_snippet, write_bundle
from byol_core.methods.evaluation import embed
from byol_core.methods.networks import build_encoder, encoder_state_dict
from byol_core.presets import get_preset


def _finished_run_with_encoder(store, overrides):
    cfg = with_overrides(get_preset("tiny"), overrides)
    run = store.create("byol", cfg, {"mode": "byol"}, stage="byol")
    torch.manual_seed(3)
    encoder = build_encoder(cfg.model)
    run.save_encoder(encoder_state_dict(encoder))
    run.set_status("finished", results={"knn_accuracy": 0.5})
    return run, cfg, encoder


@pytest.mark.parametrize("overrides", [{}, {"model.backbone": "resnet18", "model.small_stem": True}],
                         ids=["small-cnn", "resnet18-small-stem"])
def test_the_snippet_loads_the_file_and_reproduces_the_embeddings(store, tmp_path, overrides):
    run, cfg, encoder = _finished_run_with_encoder(store, overrides)
    path = write_bundle(store, run.id, tmp_path / "encoder.pt")
    bundle = torch.load(path, weights_only=True)  # plain data: no pickled code needed
    assert bundle["image_size"] == cfg.augment.image_size and len(bundle["mean"]) == 3
    splits = load_data(cfg.data)
    images = splits.test.images[:16]
    expected = embed(encoder, images, cfg.augment.image_size, splits.mean, splits.std)
    namespace = {"images": images}
    exec(loading_snippet(bundle, str(path)), namespace)  # noqa: S102 - the snippet is what users paste
    torch.testing.assert_close(namespace["features"], expected, atol=1e-5, rtol=1e-5)
    uses_byol_core = "byol_core" in loading_snippet(bundle)
    assert uses_byol_core == (cfg.model.backbone == "small-cnn")  # torchvision backbones need nothing of ours


def test_only_finished_encoders_are_exported_with_a_reason(store):
    run = store.create("byol", get_preset("tiny"), {"mode": "byol"}, stage="byol")
    with pytest.raises(ValueError, match="has no finished encoder to export"):
        encoder_bundle(store, run.id)
    run.status_path.write_text("[]")
    with pytest.raises(ValueError, match="cannot be exported: status.json holds list"):
        bundle_bytes(encoder_bundle(store, run.id))


def test_the_cli_export_writes_the_same_file_as_the_dashboard(store, tmp_path, capsys):
    from byol_core.cli import main

    run, _, _ = _finished_run_with_encoder(store, {})
    out = tmp_path / "mine.pt"
    assert main(["export", run.id, "--runs-dir", str(store.root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "weights_only=True" in printed
    assert out.read_bytes() == bundle_bytes(encoder_bundle(store, run.id))
    assert main(["export", "no-such-run", "--runs-dir", str(store.root)]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err

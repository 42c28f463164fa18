"""The dashboard's "Download encoder" and ``python -m byol_core export`` write the same bytes.

The two run in different processes with different torch thread counts: the dashboard's data is often loaded
first by the preview thread (one torch thread), the CLI uses torch's default. Summing the training images'
pixels in another order moves the last digit of the float64 mean and std, which used to reach the file.
"""

import pytest
import torch

from byol_core.augment.fast import FastViewAugment
from byol_core.cli import main
from byol_core.config import with_overrides
from byol_core.data import clear_cache, load_data
from byol_core.lab.export import bundle_bytes, encoder_bundle
from byol_core.methods.networks import build_encoder, encoder_state_dict
from byol_core.presets import get_preset

# All of digits' training images: enough pixels that torch splits the sums between threads.
OVERRIDES = {"data.max_train_images": None}


@pytest.fixture
def torch_threads():
    """Set torch's thread count inside a test; the suite's own count comes back afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)
    clear_cache()  # data loaded under a test's thread count is not left for later tests


def _finished_run(store):
    cfg = with_overrides(get_preset("tiny"), OVERRIDES)
    run = store.create("byol", cfg, {"mode": "byol"}, stage="byol")
    torch.manual_seed(5)
    run.save_encoder(encoder_state_dict(build_encoder(cfg.model)))
    run.set_status("finished", results={"knn_accuracy": 0.5})
    return run, cfg


def test_dashboard_and_cli_write_the_same_bytes_whatever_the_thread_count(store, tmp_path, torch_threads):
    run, _ = _finished_run(store)
    torch_threads(1)  # the dashboard: its preview thread loaded the data
    clear_cache()
    downloaded = bundle_bytes(encoder_bundle(store, run.id))  # what job_cards' "Download encoder" serves
    torch_threads(2)  # the CLI: torch's default on two cores, in a fresh process (no cached data)
    clear_cache()
    out = tmp_path / "cli.pt"
    assert main(["export", run.id, "--runs-dir", str(store.root), "--out", str(out)]) == 0
    (tmp_path / "downloaded.pt").write_bytes(downloaded)
    cli_file, dashboard_file = (torch.load(tmp_path / name, weights_only=True) for name in ("cli.pt", "downloaded.pt"))
    assert (cli_file["mean"], cli_file["std"]) == (dashboard_file["mean"], dashboard_file["std"])
    assert out.read_bytes() == downloaded


def test_the_file_holds_the_numbers_the_network_normalised_with(store, torch_threads):
    run, cfg = _finished_run(store)
    for threads in (1, 2):
        torch_threads(threads)
        clear_cache()
        splits = load_data(cfg.data)
        bundle = encoder_bundle(store, run.id)
        # Training and evaluation normalise with float32 tensors made from the split's statistics.
        view = FastViewAugment(cfg.augment.view1, cfg.augment.image_size, splits.mean, splits.std)
        # Exactly those numbers, even read back in float64: nothing below float32's last digit is left to differ.
        assert torch.equal(torch.tensor(bundle["mean"], dtype=torch.float64).view(1, 3, 1, 1), view.mean.double())
        assert torch.equal(torch.tensor(bundle["std"], dtype=torch.float64).view(1, 3, 1, 1), view.std.double())
        assert all(isinstance(v, float) for v in bundle["mean"] + bundle["std"])  # plain numbers, not tensors

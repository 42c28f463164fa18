"""Training from a folder's disk cache: BYOL steps read their batches from disk, and under torchrun each rank
reads only its own shard of every global batch, with the same views as when it read the whole batch."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from byol_core import distributed
from byol_core.augment.views import BYOLAugment
from byol_core.config import with_overrides
from byol_core.data import load_data
from byol_core.data.disk_images import DiskImages
from byol_core.methods.byol import pretrain_byol
from byol_core.methods.loop import EpochSampler, StepPlan
from byol_core.presets import get_preset

WORLD = 2


def _folder(root: Path, per_class: int = 24) -> Path:
    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (24 + i, 28, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _cfg(tmp_path: Path):
    folder = _folder(tmp_path / "imgs")
    return with_overrides(get_preset("tiny"), {
        "data.name": "folder", "data.folder": str(folder), "data.root": str(tmp_path / "data"),
        "data.folder_image_size": 16, "data.max_train_images": None, "byol.optim.batch_size": 8,
        "byol.optim.epochs": 1, "runtime.log_every": 1, "runtime.device": "cpu"})


def test_byol_trains_a_few_steps_reading_batches_from_the_cache(tmp_path):
    cfg = _cfg(tmp_path)
    splits = load_data(cfg.data)
    images = splits.pretrain_images()
    assert isinstance(images, DiskImages)
    before = images.rows_read
    events = []
    result = pretrain_byol(cfg, splits, callbacks=[events.append])
    steps = [e for e in events if e["kind"] == "step"]
    assert result.finished and len(steps) == result.total_steps > 1
    assert all(np.isfinite(e["loss"]) for e in steps)
    # Each step read its batch off the disk, and nothing more: the set was never loaded whole.
    assert images.rows_read - before == result.total_steps * cfg.byol.optim.batch_size


def _as_rank(monkeypatch, rank: int) -> None:
    monkeypatch.setattr(distributed, "current", lambda: distributed.World(rank, WORLD, rank))


def test_under_torchrun_each_rank_reads_a_disjoint_shard_and_together_all(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    splits = load_data(cfg.data)
    whole = splits.pretrain_images()  # a world of one: reads whole batches
    plan = StepPlan.for_data(len(whole), cfg.byol.optim, WORLD)
    read_by_rank: list[list[int]] = []
    for rank in range(WORLD):
        _as_rank(monkeypatch, rank)
        view = splits.pretrain_images()
        assert view.shard_batches and len(view) == len(whole)
        sampler, rows = EpochSampler(plan, seed=0, device=torch.device("cpu")), []
        for step in range(plan.steps_per_epoch):
            idx = sampler.indices(step)
            before = view.rows_read
            batch = view[idx]
            keep = distributed.shard(len(idx), distributed.current())
            assert view.rows_read - before == len(idx) // WORLD  # only this rank's rows came off the disk
            assert torch.equal(batch[keep], whole[idx][keep])
            assert not batch[:keep.start].any() and not batch[keep.stop:].any()
            rows += view.rows[idx[keep].numpy()].tolist()
        read_by_rank.append(rows)
    first, second = map(set, read_by_rank)
    assert not first & second  # disjoint
    epoch = plan.steps_per_epoch * plan.batch
    assert len(first | second) == epoch == len(read_by_rank[0]) + len(read_by_rank[1])  # and covering the epoch


@pytest.mark.parametrize("backend", ["fast", "kornia"])
def test_a_rank_gets_the_same_views_of_its_rows_whatever_the_other_rows_hold(tmp_path, backend):
    """Augmentation is per sample: the zeros a rank leaves in the other ranks' rows do not change its views."""
    cfg = with_overrides(_cfg(tmp_path), {"augment.backend": backend})
    splits = load_data(cfg.data)
    batch = splits.pretrain_images()[torch.arange(8)]
    keep = distributed.shard(8, distributed.World(1, WORLD, 1))
    partial = torch.zeros_like(batch)
    partial[keep] = batch[keep]
    augment = BYOLAugment(cfg.augment, splits.mean, splits.std)
    torch.manual_seed(3)
    full_views = augment(batch)
    torch.manual_seed(3)
    shard_views = augment(partial)
    for full, shard in zip(full_views, shard_views, strict=True):
        assert torch.equal(full[keep], shard[keep])

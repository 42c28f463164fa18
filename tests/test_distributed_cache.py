"""torchrun with 2 processes on an image folder read from its disk cache: each rank reads its own shard of
every global batch (tests/data/test_cache_training.py checks the shards one process at a time), and the
training still equals one process with the global batch, as for data held in memory (tests/test_distributed.py).
"""

import numpy as np
import pytest
from PIL import Image

from byol_core.config import with_overrides
from byol_core.presets import get_preset
from tests.test_distributed import (
    OVERRIDES,
    TOLERANCE,
    WORLD,
    _max_difference,
    _only_run,
    _single_process_reference,
    _torchrun,
)


def _folder(root):
    rng = np.random.default_rng(2)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(60):
            Image.fromarray(rng.integers(0, 256, (20 + i % 9, 24, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.slow
def test_two_processes_on_a_cached_folder_train_like_one_with_the_global_batch(tmp_path):
    folder = _folder(tmp_path / "imgs")
    data = {"data.name": "folder", "data.folder": str(folder), "data.root": str(tmp_path / "data"),
            "data.folder_image_size": 16, "byol.optim.batch_size": 16}
    overrides = {**OVERRIDES, **data}
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    _torchrun(tmp_path, "-m", "byol_core", "pretrain", "--preset", "tiny", "--runs-dir", "runs", "--no-progress",
              *sets)
    run = _only_run(tmp_path / "runs")
    assert run.read_status()["state"] == "finished"
    start = next(e for e in run.read_metrics() if e["kind"] == "start")
    assert start["processes"] == WORLD and start["batch_size"] == 16 * WORLD and start["total_steps"] >= 2
    cfg = with_overrides(get_preset("tiny"), overrides)
    difference = _max_difference(run.load_checkpoint()["model"], _single_process_reference(cfg))
    print(f"max |parameter difference| between 2 ranks and 1 process on the cached folder: {difference:.3g}")
    assert difference < TOLERANCE

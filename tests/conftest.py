import os

import pytest

# Passive OpenMP waiting before torch loads: the suite must pass while another process keeps the cores busy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

# The suite runs on 2 cores; BYOL_TEST_THREADS=1 keeps it from oversubscribing when something else runs.
torch.set_num_threads(int(os.environ.get("BYOL_TEST_THREADS", "2")))


@pytest.fixture()
def store(tmp_path):
    from byol_core.runs import RunStore

    return RunStore(tmp_path / "runs")

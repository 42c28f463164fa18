import os

import pytest
import torch

# Two cores are shared by everything on this machine; one torch thread per test process keeps
# timings stable and leaves room for the other.
torch.set_num_threads(int(os.environ.get("BYOL_TEST_THREADS", "2")))


@pytest.fixture()
def store(tmp_path):
    from byol_core.runs import RunStore

    return RunStore(tmp_path / "runs")

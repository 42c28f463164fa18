import os

import pytest

# Passive OpenMP waiting before torch loads: the suite must pass while another process keeps the cores busy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

# The suite runs on 2 cores; BYOL_TEST_THREADS=1 keeps it from oversubscribing when something else runs.
torch.set_num_threads(int(os.environ.get("BYOL_TEST_THREADS", "2")))


@pytest.fixture()
def store(tmp_path):
    from byol_core.lab.run_store import RunStore

    return RunStore(tmp_path / "runs")


@pytest.fixture()
def runs_dir(tmp_path, monkeypatch):
    """A fresh runs folder and job manager per test; UMAP replaced by PCA so no numba compile runs."""
    import streamlit as st

    import byol_core.analysis.embeddings as emb
    from dashboard import state

    runs = tmp_path / "runs"
    monkeypatch.chdir(tmp_path)  # data/ (decoded-folder cache, uploads) lands in the test's folder
    monkeypatch.setenv("BYOL_RUNS_DIR", str(runs))
    monkeypatch.setenv("BYOL_MAX_JOBS", "1")
    monkeypatch.setattr(emb, "warm_up_umap", lambda: None)
    monkeypatch.setattr(emb, "umap_2d", lambda features, **kwargs: emb.pca_2d(features))
    st.cache_resource.clear()
    yield runs
    state.get_manager().shutdown(timeout=60)
    st.cache_resource.clear()

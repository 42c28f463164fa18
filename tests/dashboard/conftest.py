"""The dashboard under `streamlit run` for the browser tests: one fixture, shared."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.serve import start_streamlit, stop_server, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def dashboard(tmp_path: Path, preset: str = "tiny") -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run dashboard/app.py`` on a free port over a fresh runs folder (``tmp_path / "runs"``), jobs
    starting from ``preset``: (its address, the server process); stopped (SIGTERM) after the block."""
    env = {**os.environ, "BYOL_RUNS_DIR": str(tmp_path / "runs"), "BYOL_MAX_JOBS": "1", "BYOL_DEFAULT_PRESET": preset}
    log = open(tmp_path / "streamlit.log", "w")  # noqa: SIM115 - closed in the finally below
    url, proc = start_streamlit("dashboard/app.py", ROOT, env, log)
    try:
        wait_healthy(url, proc)
        yield url, proc
    finally:
        stop_server(proc)
        log.close()
        print((tmp_path / "streamlit.log").read_text()[-3000:])


@pytest.fixture()
def server(tmp_path):
    """The dashboard's address, served on a free port over a fresh runs folder (``tmp_path / "runs"``).

    The tiny preset keeps every job short by steps: the tests wait on state, whatever the machine's speed.
    """
    with dashboard(tmp_path) as (url, _proc):
        yield url

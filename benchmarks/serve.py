"""Starting the dashboard on a loopback port and waiting for it: shared by the browser test and benchmarks."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(script: str | Path, cwd: str | Path, env: dict[str, str] | None = None,
                    log: IO | int = subprocess.DEVNULL) -> tuple[str, subprocess.Popen]:
    """``streamlit run script`` (from ``cwd``, with ``env``) on a free loopback port, its output to ``log``: (its
    address, the process). Not yet answering: :func:`wait_healthy` waits for that."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return f"http://127.0.0.1:{port}", proc


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Return once Streamlit's health endpoint answers; raise if the server exits or stays silent."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer at {url} within {timeout} s")


def settle(page, timeout: float = 60_000) -> None:
    """Wait (Playwright page) until Streamlit has finished its script run and dropped stale elements."""
    page.wait_for_timeout(700)  # the running indicator shows up with a short delay
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')",
        timeout=timeout)
    page.wait_for_timeout(400)


def stop_server(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM (Streamlit shuts down cleanly), then kill if it has not exited within ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def drag_lasso(page, area: dict[str, float], size: float, steps: int = 3) -> float:
    """Drag a closed ring (radius ``size`` of the smaller side) around the middle of ``area`` (left, top, width,
    height in page pixels) with the mouse held down; returns ``time.perf_counter()`` just before the release,
    which is when plotly sends the selection."""
    cx, cy = area["left"] + area["width"] / 2, area["top"] + area["height"] / 2
    radius = size * min(area["width"], area["height"])
    ring = [(cx + radius * math.cos(2 * math.pi * i / 12), cy + radius * math.sin(2 * math.pi * i / 12))
            for i in range(13)]
    page.mouse.move(*ring[0])
    page.mouse.down()
    for x, y in ring[1:]:
        page.mouse.move(x, y, steps=steps)
    start = time.perf_counter()
    page.mouse.up()
    return start

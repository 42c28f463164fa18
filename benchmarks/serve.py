"""Starting the dashboard on a loopback port and waiting for it: shared by the browser test and benchmarks."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

"""BYOL Lab's dashboard server: ``streamlit run dashboard/app.py``.

An ``st.App`` (Streamlit's ASGI app) that serves :mod:`dashboard.navigation`, the script each browser session runs.
It exists for its hooks. As Streamlit loads this file, the modules every page imports (``byol_core``, and with it
torch: about 2 s on 2 cores) start importing in a background thread, while the server starts and the browser loads
Streamlit's JavaScript, instead of inside the first page's run. The server answers at once; a session that arrives
before the imports end waits for them in its own ``import``. At exit, every job stops and saves its checkpoint: the server ends
by re-raising the signal it caught, and a process ended by a signal runs no ``atexit`` hook.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts dashboard/ on sys.path, not the repository root
    sys.path.insert(0, str(ROOT))

import streamlit as st

SESSION_SCRIPT = Path(__file__).resolve().parent / "navigation.py"


def _import_what_pages_need() -> None:
    import dashboard.state  # noqa: F401 - imported for its side effect: byol_core, torch and the pages' helpers


# Started as Streamlit imports this file, 0.2-0.35 s before it calls the lifespan hook (measured): the imports are
# what the first page waits for.
threading.Thread(target=_import_what_pages_need, name="byol-preload", daemon=True).start()


@asynccontextmanager
async def _lifespan(_app: object) -> AsyncIterator[None]:
    """Exit (Ctrl-C, SIGTERM): every job stops with a checkpoint first."""
    yield
    state = sys.modules.get("dashboard.state")  # not imported yet: no page has run, so there is no job to stop
    if state is not None:
        await asyncio.to_thread(state.stop_all_jobs)


app = st.App(SESSION_SCRIPT, lifespan=_lifespan)

"""The script every browser session of the dashboard runs (served by :mod:`dashboard.app`): the navigation between
four pages over ``byol_core`` (pick data and tweak BYOL's augmentations, train BYOL and supervised baselines in the
background, compare their test accuracy, look at the embeddings) and the sidebar.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts dashboard/ on sys.path, not the repository root
    sys.path.insert(0, str(ROOT))

import streamlit as st

from dashboard import state

PAGES_DIR = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="BYOL Lab", page_icon=":material/blur_on:", layout="wide")

# Every page has its own address (/data, /train, /compare, /embeddings). Streamlit serves its default page at
# the root URL only (a default page's url_path answers "Page not found"), so the default is a hidden page that
# opens the Data page at /data.
pages = [
    st.Page(PAGES_DIR / "data.py", title="Data & augmentations", icon=":material/photo_library:", url_path="data"),
    st.Page(PAGES_DIR / "train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page(PAGES_DIR / "compare.py", title="Compare", icon=":material/leaderboard:", url_path="compare"),
    st.Page(PAGES_DIR / "embeddings.py", title="Embeddings", icon=":material/scatter_plot:",
            url_path="embeddings"),
]


def _start() -> None:
    st.switch_page(pages[0])


page = st.navigation([st.Page(_start, title="BYOL Lab", url_path="start", default=True, visibility="hidden"),
                      *pages], position="sidebar")
if page.url_path == "embeddings":
    # UMAP's one-off numba compile (about a minute of CPU, in a thread that takes turns with page runs for the GIL)
    # starts with the page that needs it: started with the server, it slowed every page of the server's first
    # minutes (benchmarks/page_times.py). The Embeddings page shows PCA until UMAP is ready.
    state.start_umap_warmup()

with st.sidebar:
    st.markdown("**BYOL Lab** learns image features without labels, then shows how much they help "
                "when labels are scarce.")
    st.caption("1. Data: pick images, tweak the two random views.  \n2. Train: BYOL and a supervised "
               "baseline.  \n3. Compare: test accuracy side by side.  \n4. Embeddings: see the classes "
               "separate.")
    active = [j for j in state.get_manager().jobs() if j.active]
    st.caption(f"Runs folder: `{state.runs_dir()}` · "
               + (f"**{len(active)} job(s) running or queued**" if active else "no job running"))

page.run()

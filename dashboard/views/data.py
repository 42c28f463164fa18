"""Data & augmentations: choose the images and BYOL's two random views, and see them at once."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import streamlit as st

from byol_core.config import AugmentConfig, DataConfig, to_json
from byol_core.presets import byol_paper_augment
from byol_core.schema import field_schema
from byol_core.text import markdown_text
from dashboard import augment_controls as ac
from dashboard import images, preview, state, upload_panel

DOWNLOADABLE = ("fashion-mnist", "cifar10", "stl10")
PREVIEW_COUNT = 8
DISPLAY_PX = 96
VIEW_TAB = "data.view"  # which view's controls are open: "View 1" or "View 2"
CODE_OPEN = "data.copy_open"  # the expander with the config and the Python snippet: open or not

st.title("Data & augmentations")
st.markdown(
    "BYOL never sees a label. It shows a network **two random views** of the same image and teaches "
    "it to map both to the same point. What the views change (crop, colour, blur…) is what the "
    "features learn to ignore. Pick a data set, tweak the views, and the Train page uses exactly "
    "these settings."
)


# --------------------------------------------------------------------------- data set
def _on_source_change() -> None:
    st.session_state.pop("data.download_error", None)


def _shown_name(cfg: DataConfig) -> str:
    """The data set in use, as the page names it: a folder or upload by its own name, never the server's path."""
    if cfg.name != "folder" or not cfg.folder:
        return f"**{cfg.name}**"
    what = "the upload" if state.get_data_source() == "upload" else "the folder"
    return f"{what} **{markdown_text(Path(cfg.folder).name)}**"  # a name a person chose: shown as text


def _choose_data() -> None:
    sources = list(state.DATASET_LABELS)
    if "data.source" not in st.session_state:
        st.session_state["data.source"] = state.get_data_source()
    col_select, col_detail = st.columns([1, 2])
    source = col_select.selectbox("Data set", sources, key="data.source", format_func=state.DATASET_LABELS.get,
                                  on_change=_on_source_change,
                                  help="digits is built in; the others are read from the data/ folder "
                                       "(fashion-mnist also from Debian's dataset-fashion-mnist package).")
    candidate: DataConfig | None = None
    refused = False  # a refusal was shown: nothing new is on its way
    current = state.get_data_cfg()
    with col_detail:
        if source in ("digits", *DOWNLOADABLE):
            candidate = DataConfig(name=source, download=False)
        elif source == "folder":
            default = current.folder if current.name == "folder" and state.get_data_source() == "folder" else ""
            if "data.folder" not in st.session_state:
                st.session_state["data.folder"] = default or ""
            path = st.text_input("Image folder", key="data.folder", placeholder="/path/to/images",
                                 help="One subfolder per class (for accuracy numbers), or a flat folder of "
                                      "unlabelled images. Images are centre-cropped square.")
            if path.strip():
                refused = True
                with state.user_errors():
                    candidate = DataConfig(name="folder", folder=path.strip())
                    refused = False
        else:
            candidate, refused = upload_panel.upload_choice()
    if candidate is None:
        wanted = "an image folder" if source == "folder" else "images to upload"
        st.info(f"Still using {_shown_name(current)}." if refused else
                f"Showing {_shown_name(current)} until you choose {wanted}.", icon=":material/info:")
        return
    try:
        splits = state.load_splits(candidate) if candidate == current else state.load_with_progress(candidate)
    except state.USER_ERRORS as exc:
        st.error(f"{exc}", icon=":material/error:")
        if source in DOWNLOADABLE:
            st.warning(f"**{source}** is not on this machine yet, so it cannot be used offline. "
                       "Download it (needs internet; stl10 is 2.6 GB) or pick **digits**, which is built in.",
                       icon=":material/cloud_off:")
            if st.button(f"Download {source} now", key="data.download"):
                try:
                    with st.spinner(f"Downloading {source}…"):
                        state.load_splits(dataclasses.replace(candidate, download=True))
                    st.rerun()
                except state.USER_ERRORS as exc2:
                    st.error(f"{exc2}", icon=":material/error:")
        st.info(f"Still using {_shown_name(current)}.", icon=":material/info:")
        return
    if candidate != current:
        # A new data set brings its tuned views and view size; the fields the person changed stay changed.
        state.set_data_cfg(candidate, source)
        if candidate.name != current.name:
            ac.load_widgets(state.get_augment_cfg())
    labelled = f"{splits.num_classes} classes" if splits.num_classes else "no class labels"
    skipped = upload_panel.counted(len(splits.skipped_files), "file")
    st.caption(f"**{splits.name}**: {len(splits.train)} training and {len(splits.test)} test images, "
               f"{labelled}, stored at {tuple(splits.train.images.shape[2:])} px"
               f"{f', {skipped} skipped' if splits.skipped_files else ''}.")
    if splits.skipped_files:
        with st.expander(f"Skipped files ({skipped}, named inside the folder)"):
            st.code("\n".join(upload_panel.skipped_lines(splits.skipped_files[:50], candidate.folder)), language=None)


_choose_data()
data_cfg = state.get_data_cfg()

# --------------------------------------------------------------------------- augmentation controls
aug_cfg = state.get_augment_cfg()
ac.init_widgets(aug_cfg)
if "aug.seed" not in st.session_state:
    st.session_state["aug.seed"] = 0


def _reset_views(to_paper: bool) -> None:
    """Callback: the BYOL paper's views (Table 6) at the current size, or the data set's tuned views."""
    choice = state.get_choice().without_edits()
    if to_paper:
        choice = choice.with_augment(byol_paper_augment(choice.image_size, backend=choice.augment.backend))
    state.set_choice(choice)
    ac.load_widgets(choice.augment)


def _new_draw() -> None:
    st.session_state["aug.seed"] = int(st.session_state.get("aug.seed", 0)) + 1


st.subheader("Augmentations")
left, right = st.columns([5, 7], gap="medium")
with left:
    schema = {row["name"]: row for row in field_schema(AugmentConfig)}
    c1, c2 = st.columns(2)
    size_row = schema["image_size"]
    image_size = c1.number_input("View size (image_size, px)", min_value=int(size_row["min"]),
                                 max_value=int(size_row["max"]), step=4, key="aug.image_size",
                                 help=size_row["help"])
    backend_row = schema["backend"]
    backend = c2.selectbox("Training backend", list(backend_row["choices"]), key="aug.backend",
                           help=backend_row["help"] + " The preview always uses Kornia, the reference.")
    # Only the open view's controls are drawn (19 widgets a view: a warm reload took 0.83 s instead of 0.97 s,
    # benchmarks/page_ab.py); the other view keeps its values in the Data page's choice, and its controls start from
    # there when opened.
    tabs = st.tabs([ac.VIEW_TITLES[v] for v in ac.VIEWS], key=VIEW_TAB, on_change="rerun")
    views = {}
    for tab, view in zip(tabs, ac.VIEWS, strict=True):
        if not tab.open:
            views[view] = getattr(aug_cfg, view)
            ac.forget_view(view)
            continue
        with tab:
            summary = st.empty()  # filled once the controls below have given this run's values
            views[view] = None
            with state.user_errors(f"{ac.VIEW_TITLES[view]}: "):
                views[view] = ac.view_controls(view, int(image_size))
                summary.caption(ac.view_summary(view, views[view]) + " The BYOL paper (Table 6) blurs view 1 "
                                "always and view 2 10% of the time, and solarizes only view 2 (20%).")
    c1, c2 = st.columns(2)
    c1.button("Reset to BYOL paper defaults", on_click=_reset_views, args=(True,), icon=":material/restart_alt:",
              key="aug.reset")
    c2.button(f"Back to {state.get_choice().base_preset}'s views", on_click=_reset_views, args=(False,),
              icon=":material/undo:", key="aug.reset_tuned", help="The views tuned for this data set.")

if all(v is not None for v in views.values()):
    with state.user_errors():
        aug_cfg = AugmentConfig(image_size=int(image_size), backend=backend, view1=views["view1"],
                                view2=views["view2"])
        state.set_augment_cfg(aug_cfg)
    choice = state.get_choice()
    edits = choice.edits_text()
    with left:  # jobs start from their preset's views and take only these changes (and the view size)
        st.caption(f"Starts from the views tuned for **{choice.data.name}** (preset `{choice.base_preset}`); "
                   + (f"you changed {len(edits)} field{'s' * (len(edits) != 1)}: " + ", ".join(f"`{e}`" for e in edits)
                      if edits else "you changed none.")
                   + " A job keeps its preset's views except the fields you changed.")

# --------------------------------------------------------------------------- preview
with right:
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    seed = c1.number_input("Seed of the random draw", min_value=0, step=1, key="aug.seed",
                           help="The same seed draws the same views; change it (or press New draw) for others.")
    c2.button("New draw", on_click=_new_draw, icon=":material/casino:", key="aug.new_draw")
    sample = None  # stays None when the data set cannot be read (the error says why)
    with state.user_errors():
        sample = preview.preview_sample(data_cfg, PREVIEW_COUNT)
        t0 = time.perf_counter()
        originals, view1, view2 = preview.run_preview(sample.images, aug_cfg, int(seed))
        grid = images.pair_grid(originals, view1, view2, DISPLAY_PX)
        elapsed = 1000 * (time.perf_counter() - t0)
        st.markdown("**Each row: original · view 1 · view 2**")
        names = f"; classes {', '.join(sample.names)}" if any(sample.names) else ""
        st.image(grid, caption=f"{len(sample.indices)} training images (numbers "
                 f"{', '.join(map(str, sample.indices))}{names}); views drawn at {aug_cfg.image_size} px, "
                 f"shown at {DISPLAY_PX} px; drawn in {elapsed:.0f} ms.")
    st.page_link("views/train.py", label="Train with these settings", icon=":material/arrow_forward:")
    # Drawn only while open: highlighting the two code blocks was a third of the page's drawing after each rerun.
    copy = st.expander("Copy these views: the config (JSON) and the same pipeline in Python", key=CODE_OPEN,
                       on_change="rerun", icon=":material/content_copy:")
    if copy.open:
        with copy:
            tab_json, tab_python = st.tabs(["Config (JSON)", "The same pipeline in Python"])
            with tab_json:
                st.code(to_json(aug_cfg), language="json", height=320)
            with tab_python:
                if sample is not None:
                    st.code(ac.python_snippet(aug_cfg, data_cfg, sample.indices, int(seed)), language="python")

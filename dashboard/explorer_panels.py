"""The Embeddings page's explorer: filters, background progress, saved selections, a confusion matrix whose
cells open their images, "images like this one" and exports.

The logic lives in :mod:`byol_core.analysis.embeddings.explorer`; this module draws its widgets. Filters
apply to every plot (the same rows: prediction filters use the first encoder's kNN predictions). Saved
selections are files under ``<runs>/_selections/``, exports under ``<runs>/_exports/``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import streamlit as st

from byol_core.analysis.embeddings import (
    CORRECTNESS,
    EXPORTS_DIRNAME,
    RANDOM_INIT,
    EmbeddingSet,
    Filters,
    SavedSelection,
    cell_rows,
    delete_selection,
    embed_upload,
    filter_mask,
    load_selections,
    save_selection,
    selection_csv,
    similar_to,
    write_parquet,
    write_projector_tsv,
)
from byol_core.lab.run_store import RunStore
from byol_core.text import markdown_text
from dashboard import embedding_panels as panels
from dashboard import images, selection, state

SIMILAR = 12
THUMB_PX = 64
DOWNLOAD_MAX_BYTES = 200 * 2**20  # bigger exports are only written to the runs folder (their path is shown)
F_CLASSES, F_PREDICTED, F_CORRECT, F_NAME = "emb.f.classes", "emb.f.predicted", "emb.f.correct", "emb.f.name"
EXPORTED_KEY = "emb.exported"  # paths written by the last export, offered for download
TOOLS = ("Saved selections", "Confusion matrix", "Images like this one", "Export")
TOOL = "emb.tool"  # which of TOOLS is open


def _class_names(classes: Sequence[str]) -> list[str]:
    return [str(c) for c in classes]


# ---------------------------------------------------------------------------- filters
def filter_controls(classes: Sequence[str], *, predictions: bool) -> Filters:
    """The filter widgets; prediction filters are offered once the page has kNN predictions."""
    names = _class_names(classes)
    with st.expander("Filter the points", expanded=any(st.session_state.get(k) for k in (F_CLASSES, F_PREDICTED,
                                                                                         F_NAME))):
        c1, c2, c3, c4 = st.columns([3, 3, 2, 3])
        true = c1.multiselect("True class", range(len(names)), format_func=lambda c: names[c], key=F_CLASSES,
                              placeholder="all classes")
        guess = c2.multiselect("Predicted class", range(len(names)), format_func=lambda c: names[c], key=F_PREDICTED,
                               placeholder="all predictions", disabled=not predictions,
                               help=None if predictions else "Colour by correct / incorrect to compute predictions.")
        right = c3.selectbox("Correct?", CORRECTNESS, key=F_CORRECT, disabled=not predictions,
                             help="kNN on these embeddings, the first encoder's (the labelled training images vote).")
        name = c4.text_input("Name contains", key=F_NAME, placeholder="e.g. cat/, IMG_0042, test #12",
                             help="Image names are the file's path in its folder (image folders, uploads), else "
                                  "'<part> #<index>': the split and the image's position in it.")
    if not predictions:
        guess, right = [], "all"
    return Filters(classes=tuple(true), predicted=tuple(guess), correctness=right, name=name)


def shown_rows(plot: panels.EncoderPlot, filters: Filters) -> np.ndarray | None:
    """The rows passing ``filters`` (None when no filter is set, i.e. all rows)."""
    if not filters.active:
        return None
    return np.flatnonzero(filter_mask(plot.es, filters, plot.predicted, names=_names(plot.cache_path, plot.es)))


@st.cache_data(show_spinner=False, max_entries=4)
def _names(cache_path: str, _es: EmbeddingSet) -> np.ndarray:  # _es: not hashed, the path keys it
    return _es.names()


# ---------------------------------------------------------------------------- background embedding
def show_pending(pending: Sequence[panels.Pending]) -> None:
    """Progress of the sets still embedding; call it in a fragment that runs each second: it reruns the page
    when a set is done."""
    for p in pending:
        if p.error:
            st.error(f"{markdown_text(p.label)}: embedding failed ({p.error}).", icon=":material/error:")
            continue
        if p.finished():
            st.rerun(scope="app")
        done, total = p.progress()
        st.progress(done / max(total, 1), text=f"Embedding {total:,} images with {markdown_text(p.label)} in the "
                                               f"background: {done:,} done. The result is cached on disk, so this "
                                               "happens once per encoder.")


# ---------------------------------------------------------------------------- saved selections
def _current_rows(plot: panels.EncoderPlot, shown: np.ndarray | None) -> tuple[list[int], str]:
    """The rows a save would keep: the lasso selection, else the filtered rows; and which it is."""
    rows = selection.applies(st.session_state.get(panels.SELECTION_KEY), plot.data_key, len(plot.es))
    if rows:
        return rows, "the lasso selection"
    if shown is not None:
        return shown.tolist(), "the filtered points"
    return [], ""


def _show_saved(data_key: str, rows: tuple[int, ...]) -> None:
    st.session_state[panels.SELECTION_KEY] = (data_key, rows)
    st.session_state.pop(panels.PICK_KEY, None)


def saved_selections(store: RunStore, plot: panels.EncoderPlot, shown: np.ndarray | None) -> None:
    rows, what = _current_rows(plot, shown)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    name = c1.text_input("Name", key="emb.save.name", placeholder="e.g. blurry sevens",
                         help="Saves the lasso selection, or when there is none the points that pass the filters.")
    if c2.button("Save selection", key="emb.save", disabled=not rows, icon=":material/bookmark_add:"):
        with state.user_errors("Not saved: "):
            save_selection(store.root, SavedSelection(name=name, data_key=plot.data_key, rows=tuple(rows),
                                                      names=tuple(_names(plot.cache_path, plot.es)[rows].tolist())))
            st.success(f"Saved {len(rows)} images ({what}) as '{markdown_text(name.strip())}'.")
    st.caption(f"Would save {len(rows)} images: {what}." if rows else "Lasso some points or set a filter to save them.")
    saved = load_selections(store.root, plot.data_key)
    if not saved:
        return
    labels = {f"{s.name} · {len(s.rows)} images": s for s in saved}
    pick = labels[st.selectbox("Saved selections", list(labels), key="emb.saved")]
    valid = tuple(r for r in pick.rows if 0 <= r < len(plot.es))
    b1, b2, b3 = st.columns(3)
    b1.button("Show on the plots", key="emb.saved.show", on_click=_show_saved, args=(plot.data_key, valid),
              icon=":material/visibility:")
    b2.download_button("CSV of names and labels", selection_csv(plot.es, valid, plot.predicted),
                       file_name=f"{re.sub(r'[^A-Za-z0-9._-]+', '-', pick.name).strip('-') or 'selection'}.csv",
                       mime="text/csv", key="emb.saved.csv", icon=":material/download:")
    if b3.button("Delete", key="emb.saved.delete", icon=":material/delete:"):
        delete_selection(store.root, pick)
        st.rerun()


# ---------------------------------------------------------------------------- confusion matrix → images
def _filter_cell(true_class: int, predicted_class: int) -> None:
    st.session_state[F_CLASSES], st.session_state[F_PREDICTED] = [true_class], [predicted_class]
    st.session_state[F_CORRECT] = "all"


def confusion_cells(plot: panels.EncoderPlot) -> None:
    """The shown images' confusion counts; choosing a cell filters the plots to its images."""
    if plot.predicted is None:
        st.caption("Colour by correct / incorrect to compute each image's kNN prediction and its confusion matrix.")
        return
    labelled = plot.es.labels >= 0
    k = len(plot.es.classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (plot.es.labels[labelled], plot.predicted[labelled]), 1)
    names = _class_names(plot.es.classes)
    st.dataframe({"true \\ predicted": names, **{n: matrix[:, j] for j, n in enumerate(names)}}, hide_index=True)
    cells = sorted(((int(matrix[t, p]), t, p) for t in range(k) for p in range(k) if t != p and matrix[t, p]),
                   reverse=True)
    if not cells:
        st.caption("No confusions: every labelled image is predicted right.")
        return
    options = {f"{names[t]} → {names[p]} · {n} image{'' if n == 1 else 's'}": (t, p) for n, t, p in cells}
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    t, p = options[c1.selectbox("A cell (true → predicted), most frequent first", list(options), key="emb.cell")]
    c2.button("Filter the plots to it", key="emb.cell.filter", on_click=_filter_cell, args=(t, p),
              icon=":material/filter_alt:")
    rows = cell_rows(plot.es.labels, plot.predicted, t, p)[:48]
    st.image(images.thumbnails(plot.test_images(rows), THUMB_PX),
             caption=_names(plot.cache_path, plot.es)[rows].tolist(), width=THUMB_PX)


# ---------------------------------------------------------------------------- images like this one
def similar_images(store: RunStore, plot: panels.EncoderPlot, reference: str | None) -> None:
    """Nearest neighbours (cosine, full feature space) of a row or an uploaded image, under the first encoder."""
    pick = st.session_state.get(panels.PICK_KEY)
    start = pick[1] if pick and pick[0] == plot.data_key and 0 <= pick[1] < len(plot.es) else None
    c1, c2 = st.columns(2)
    row = c1.number_input("Point number (click a point, or read it on hover)", 0, len(plot.es) - 1, start,
                          key=f"emb.like.row.{len(plot.es)}.{start}", placeholder="click a point on the plot")
    upload = c2.file_uploader("…or upload an image", type=["png", "jpg", "jpeg", "webp", "bmp"],
                              key="emb.like.upload")
    if row is None and upload is None:
        st.caption("Click a point, type its number or upload an image to see the images most like it.")
        return
    with state.user_errors("Cannot search with that image: "):
        if upload is not None:
            query = _upload_features(str(store.root), plot.source, reference if plot.source == RANDOM_INIT else None,
                                     plot.cache_path, upload.getvalue())
            rows, sims = similar_to(plot.es.features, query, SIMILAR)
            st.image(upload.getvalue(), caption="uploaded", width=THUMB_PX * 2)
        else:
            row = int(row)
            rows, sims = similar_to(plot.es.features, plot.es.features[row], SIMILAR, exclude=row)
            st.image(images.thumbnails(plot.test_images([row]), THUMB_PX * 2),
                     caption=f"{_names(plot.cache_path, plot.es)[row]} · {plot.class_name(row)}", width=THUMB_PX * 2)
        st.markdown(f"**The {len(rows)} most similar images under {markdown_text(plot.label)}** (cosine similarity "
                    "of the full features, not of the 2-D picture)")
        st.image(images.thumbnails(plot.test_images(rows), THUMB_PX), width=THUMB_PX,
                 caption=[f"{markdown_text(plot.class_name(r))} · {s:.2f}" for r, s in zip(rows, sims, strict=True)])


@st.cache_data(show_spinner="Embedding the upload…", max_entries=8)
def _upload_features(root: str, source: str, ref: str | None, cache_path: str, data: bytes) -> np.ndarray:
    return embed_upload(RunStore(root), source, data, reference_run=ref)


# ---------------------------------------------------------------------------- exports
def exports(store: RunStore, plot: panels.EncoderPlot) -> None:
    """Write the set with its metadata as Parquet, or as TensorBoard projector TSVs, under ``<runs>/_exports/``."""
    folder = store.root / EXPORTS_DIRNAME / Path(plot.cache_path).stem
    c1, c2 = st.columns(2)
    if c1.button("Write Parquet", key="emb.export.parquet", icon=":material/table:",
                 help="One row per image: name, split, index, label, class, prediction, the 2-D position and "
                      "the feature vector. Opens in pandas and Embedding Atlas."):
        with state.user_errors("Export failed: "), st.spinner("Writing Parquet…"):
            xy, _ = panels.layout_of(plot)
            st.session_state[EXPORTED_KEY] = [str(write_parquet(plot.es, folder / "embeddings.parquet",
                                                                predicted=plot.predicted, xy=xy))]
    if c2.button("Write TSV (TensorBoard projector)", key="emb.export.tsv", icon=":material/description:"):
        with state.user_errors("Export failed: "), st.spinner("Writing vectors.tsv and metadata.tsv…"):
            st.session_state[EXPORTED_KEY] = [str(p) for p in write_projector_tsv(plot.es, folder,
                                                                                   predicted=plot.predicted)]
    for path in map(Path, st.session_state.get(EXPORTED_KEY, [])):
        if not path.is_file() or not path.is_relative_to(store.root):
            continue
        size_mb = path.stat().st_size / 2**20
        st.caption(f"Written: `{path.relative_to(store.root)}` in the runs folder ({size_mb:.1f} MB).")
        if path.stat().st_size <= DOWNLOAD_MAX_BYTES:
            st.download_button(f"Download {path.name}", path.read_bytes(), file_name=path.name,
                               key=f"emb.export.dl.{path.name}", icon=":material/download:")


def tools(store: RunStore, plot: panels.EncoderPlot, shown: np.ndarray | None, reference: str | None) -> None:
    """The explorer's tools for the first encoder's set, in tabs; only the open one is drawn (a rerun of the page
    then draws one tool's widgets and table, not four)."""
    save, cells, like, export = st.tabs(TOOLS, key=TOOL, on_change="rerun")
    if save.open:
        with save, state.user_errors():
            saved_selections(store, plot, shown)
    if cells.open:
        with cells, state.user_errors():
            confusion_cells(plot)
    if like.open:
        with like:
            similar_images(store, plot, reference)
    if export.open:
        with export:
            exports(store, plot)

"""The explorer over an embedding set: filters, saved selections, exports and "images like this one".

Plain NumPy on an :class:`EmbeddingSet` and its predictions, so it answers in milliseconds at 100k
rows and is tested without a page. Rows are rows of the set; an image's name is ``es.names()``: its file path
inside the folder for image folders and uploads ("cat/IMG_0042.jpg"), else "<part> #<index>" ("test #17",
"unlabeled #4031"). That is what the name filter searches and what the exports and saved selections carry.
Saved selections live as small JSON files under ``<runs>/_selections/``; exports under ``<runs>/_exports/``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from ...data import load_data
from ...files import atomic_write, atomic_write_json
from ...lab.run_store import RunStore
from ...methods.evaluation import embed
from .scores import _as_matrix
from .sets import PARTS, EmbeddingSet
from .sources import encoder_from_source

SELECTIONS_DIRNAME = "_selections"  # under the runs folder
EXPORTS_DIRNAME = "_exports"
CORRECTNESS = ("all", "correct", "incorrect")
MAX_NAME = 80


@dataclass(frozen=True)
class Filters:
    """Which rows the explorer shows; an empty choice means no restriction on that field."""

    classes: tuple[int, ...] = ()      # true classes shown
    predicted: tuple[int, ...] = ()    # predicted classes shown (needs predictions)
    correctness: str = "all"           # "all", "correct" or "incorrect" (needs predictions)
    name: str = ""                     # a case-insensitive part of the image's name

    @property
    def active(self) -> bool:
        return bool(self.classes or self.predicted or self.correctness != "all" or self.name.strip())


def filter_mask(es: EmbeddingSet, filters: Filters, predicted: np.ndarray | None = None,
                names: np.ndarray | None = None) -> np.ndarray:
    """A bool per row: whether it passes every filter. Unlabelled rows are neither correct nor incorrect.

    ``predicted``: each row's predicted class, needed by the prediction and correct / incorrect filters
    (ValueError without it). ``names``: ``es.names()``, passed in when the caller already holds them.
    """
    if filters.correctness not in CORRECTNESS:
        raise ValueError(f"correctness {filters.correctness!r} is not one of {', '.join(CORRECTNESS)}.")
    labels = np.asarray(es.labels)
    mask = np.ones(len(labels), dtype=bool)
    if filters.classes:
        mask &= np.isin(labels, np.asarray(filters.classes, dtype=np.int64))
    if filters.predicted or filters.correctness != "all":
        if predicted is None or len(predicted) != len(labels):
            raise ValueError("the prediction and correct / incorrect filters need each image's prediction: "
                             "colour by correct / incorrect first to compute them.")
        predicted = np.asarray(predicted)
        if filters.predicted:
            mask &= np.isin(predicted, np.asarray(filters.predicted, dtype=np.int64))
        if filters.correctness != "all":
            right = predicted == labels
            mask &= (labels >= 0) & (right if filters.correctness == "correct" else ~right)
    if text := filters.name.strip().lower():
        names = es.names() if names is None else names
        mask &= np.fromiter((text in str(n).lower() for n in names), dtype=bool, count=len(labels))
    return mask


def cell_rows(labels: np.ndarray, predicted: np.ndarray, true_class: int, predicted_class: int) -> np.ndarray:
    """Rows of one confusion-matrix cell: true class ``true_class`` predicted as ``predicted_class``."""
    return np.flatnonzero((np.asarray(labels) == true_class) & (np.asarray(predicted) == predicted_class))


def similar_to(features: np.ndarray, query: np.ndarray, k: int = 8, exclude: int | None = None) -> tuple[np.ndarray,
                                                                                                          np.ndarray]:
    """The ``k`` rows most cosine-similar to the vector ``query`` in the full feature space, most similar first.

    Returns (rows int64, cosine similarities float32); ties go to the lower row. ``exclude``: a row
    left out (the query's own row when it is one of the set's images).
    """
    x = F.normalize(_as_matrix(features), dim=1)
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if x.shape[1] != len(q):
        raise ValueError(f"the query has {len(q)} features but the set's images have {x.shape[1]}: "
                         "embed it with the same encoder.")
    sims = (x @ F.normalize(_as_matrix(q[None]), dim=1)[0]).numpy().astype(np.float64)
    if exclude is not None and 0 <= exclude < len(sims):
        sims[exclude] = -np.inf
    order = np.argsort(-sims, kind="stable")[:max(0, min(k, len(sims) - (exclude is not None)))]
    return order.astype(np.int64), sims[order].astype(np.float32)


def embed_upload(store: RunStore, source: str, data: bytes, *, reference_run: str | None = None) -> np.ndarray:
    """The features (D,) of an uploaded image under ``source``, prepared as the data set's images are.

    The image is centre-cropped and resized to the data set's image size and channels (as a folder's
    images are decoded), then embedded like the test images. ValueError when it is not a readable image.
    """
    encoder, cfg = encoder_from_source(store, source, reference_run)
    splits = load_data(cfg.data)
    channels, height, width = splits.test.images.shape[1:] if len(splits.test) else splits.train.images.shape[1:]
    try:
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img).convert("L" if channels == 1 else "RGB")
            img = ImageOps.fit(img, (width, height), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
            pixels = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"the upload is not an image that can be read ({type(exc).__name__}): use a PNG or "
                         "JPEG file.") from exc
    tensor = torch.from_numpy(pixels.reshape(height, width, channels).transpose(2, 0, 1).copy())[None]
    features = embed(encoder, tensor, cfg.augment.image_size, splits.mean, splits.std, 1)
    return features[0].numpy().astype(np.float32)


# ---------------------------------------------------------------------------- what a row holds
def row_table(es: EmbeddingSet, rows: Sequence[int] | np.ndarray | None = None,
              predicted: np.ndarray | None = None) -> dict[str, list[Any]]:
    """Columns for exports, one entry per row: row, name, part, index, label, class[, predicted, correct]."""
    chosen = np.arange(len(es)) if rows is None else np.asarray(rows, dtype=np.int64)
    labels = np.asarray(es.labels)[chosen]
    classes = np.asarray([*es.classes, "unlabelled"], dtype=object)  # label -1 reads the last entry
    table: dict[str, list[Any]] = {
        "row": chosen.tolist(), "name": es.names()[chosen].tolist(),
        "part": np.asarray(PARTS, dtype=object)[es.part_codes()[chosen]].tolist(),
        "index": np.asarray(es.indices)[chosen].tolist(), "label": labels.tolist(),
        "class": classes[np.where(labels >= 0, labels, -1)].tolist(),
    }
    if predicted is not None:
        guess = np.asarray(predicted)[chosen]
        table["predicted"] = classes[np.where(guess >= 0, guess, -1)].tolist()
        table["correct"] = [bool(g == y) if y >= 0 else None for g, y in zip(guess.tolist(), labels.tolist(),
                                                                            strict=True)]
    return table


def selection_csv(es: EmbeddingSet, rows: Sequence[int] | np.ndarray, predicted: np.ndarray | None = None) -> str:
    """CSV text of the chosen rows' names, split indices and labels (header first)."""
    table = row_table(es, rows, predicted)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(table))
    writer.writerows(zip(*table.values(), strict=True))
    return out.getvalue()


def write_parquet(es: EmbeddingSet, path: Path, *, predicted: np.ndarray | None = None,
                  xy: np.ndarray | None = None) -> Path:
    """Embeddings with their metadata as one Parquet file (a ``vector`` list column; ``x``/``y`` when given)."""
    import pyarrow as pa  # only when exporting: pyarrow is heavy to import
    import pyarrow.parquet as pq

    table = row_table(es, predicted=predicted)
    columns: dict[str, Any] = dict(table)
    if xy is not None:
        columns["x"], columns["y"] = np.asarray(xy)[:, 0].tolist(), np.asarray(xy)[:, 1].tolist()
    features = np.ascontiguousarray(es.features, dtype=np.float32)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), features.shape[1]) \
        if features.size else pa.array([[] for _ in range(len(es))], type=pa.list_(pa.float32()))
    arrow = pa.table({**{k: pa.array(v) for k, v in columns.items()}, "vector": vectors})
    atomic_write(path, lambda fh: pq.write_table(arrow, fh))
    return path


def write_projector_tsv(es: EmbeddingSet, folder: Path, *, predicted: np.ndarray | None = None) -> tuple[Path, Path]:
    """TensorBoard projector files: ``vectors.tsv`` (no header) and ``metadata.tsv`` (header, same row order)."""
    vectors, metadata = Path(folder) / "vectors.tsv", Path(folder) / "metadata.tsv"
    atomic_write(vectors, lambda fh: np.savetxt(fh, np.asarray(es.features, dtype=np.float32), fmt="%.6g",
                                                delimiter="\t"))
    table = row_table(es, predicted=predicted)
    lines = ["\t".join(table)] + ["\t".join(_tsv_cell(v) for v in values) for values in zip(*table.values(),
                                                                                          strict=True)]
    atomic_write(metadata, lambda fh: fh.write(("\n".join(lines) + "\n").encode()))
    return vectors, metadata


def _tsv_cell(value: Any) -> str:
    return re.sub(r"[\t\r\n]", " ", "" if value is None else str(value))  # a tab in a class name would add a column


# ---------------------------------------------------------------------------- saved selections
@dataclass(frozen=True)
class SavedSelection:
    """A named set of rows of the images named by ``data_key`` (the same rows under every encoder)."""

    name: str
    data_key: str
    rows: tuple[int, ...]
    names: tuple[str, ...] = ()       # the rows' image names, so the file reads on its own
    created: float = field(default_factory=time.time)


def check_selection_name(name: str) -> str:
    """The name, stripped; ValueError when it is empty, too long or holds a line break."""
    clean = name.strip()
    if not clean:
        raise ValueError("give the selection a name (e.g. 'blurry sevens').")
    if len(clean) > MAX_NAME or any(c in clean for c in "\r\n\t"):
        raise ValueError(f"a selection's name is one line of at most {MAX_NAME} characters.")
    return clean


def _selection_path(root: Path, name: str, data_key: str) -> Path:
    digest = hashlib.sha1(f"{data_key}\n{name}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "selection"
    return Path(root) / SELECTIONS_DIRNAME / f"{slug}-{digest}.json"


def save_selection(root: Path, selection: SavedSelection) -> Path:
    """Write ``selection`` under ``<root>/_selections/`` (the same name on the same images replaces it)."""
    name = check_selection_name(selection.name)
    if not selection.rows:
        raise ValueError("the selection is empty: lasso some points or set a filter first.")
    path = _selection_path(root, name, selection.data_key)
    atomic_write_json(path, {**asdict(selection), "name": name, "rows": [int(r) for r in selection.rows]})
    return path


def load_selections(root: Path, data_key: str | None = None) -> list[SavedSelection]:
    """The saved selections (of the images named ``data_key`` when given), newest first; unreadable files skipped."""
    found = []
    for path in sorted((Path(root) / SELECTIONS_DIRNAME).glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            saved = SavedSelection(name=str(raw["name"]), data_key=str(raw["data_key"]),
                                   rows=tuple(int(r) for r in raw["rows"]),
                                   names=tuple(str(n) for n in raw.get("names", ())),
                                   created=float(raw.get("created", 0.0)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if data_key is None or saved.data_key == data_key:
            found.append(saved)
    return sorted(found, key=lambda s: -s.created)


def delete_selection(root: Path, selection: SavedSelection) -> None:
    _selection_path(root, selection.name, selection.data_key).unlink(missing_ok=True)

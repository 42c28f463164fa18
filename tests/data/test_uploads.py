"""Uploads with labels: per-class groups and zips of class folders land as class folders the loader reads."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from byol_core.config import DataConfig
from byol_core.data import load_data
from byol_core.data.uploads import (
    UploadError,
    extract_class_zip,
    safe_class_name,
    save_class_uploads,
    save_uploads,
)
from tests.app_helpers import _app, _errors, _page


def _png(shade: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), shade, np.uint8)).save(out, format="PNG")
    return out.getvalue()


class _Upload:
    """What Streamlit's UploadedFile offers the core: a name, a size and the bytes."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data, self.size = name, data, len(data)

    def getvalue(self) -> bytes:
        return self._data


def _zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def _images_under(folder: Path) -> dict[str, bytes]:
    """The files an upload folder holds, without its hidden manifest."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def _nothing_half_written(root: Path) -> bool:
    """No folder in the uploads folder: neither a complete nor a partial one (its lock file may stay)."""
    return not (root / "uploads").exists() or not [p for p in (root / "uploads").iterdir() if p.is_dir()]


def _load(folder: Path, tmp_path: Path):
    return load_data(DataConfig(name="folder", folder=str(folder), folder_image_size=8, root=str(tmp_path / "cache")))


# --------------------------------------------------------------------------- one upload per class
def test_per_class_uploads_are_saved_as_class_folders_the_loader_reads_as_labels(tmp_path):
    cats = [_Upload(f"cat{i}.png", _png(10 + i)) for i in range(3)]
    dogs = [_Upload("dog.PNG", _png(200)), _Upload("dog.png", _png(201)), _Upload("sub/dir/x.png", _png(202))]
    saved = save_class_uploads([("cats", cats), ("  dogs ", dogs), ("birds", [])], root=tmp_path)

    assert saved.folder.parent == tmp_path / "uploads" and saved.classes == ("cats", "dogs") and saved.images == 6
    written = _images_under(saved.folder)
    # Same name twice in one class: the second is kept under a new name; a path in a name never becomes a folder.
    assert sorted(written) == ["cats/cat0.png", "cats/cat1.png", "cats/cat2.png",
                               "dogs/dog-2.png", "dogs/dog.png", "dogs/x.png"]
    assert written["cats/cat1.png"] == _png(11) and written["dogs/x.png"] == _png(202)

    splits = _load(saved.folder, tmp_path)
    assert splits.classes == ["cats", "dogs"]
    assert len(splits.train) + len(splits.test) == 6 and set(splits.train.labels.tolist()) == {0, 1}

    again = save_class_uploads([("cats", cats), ("  dogs ", dogs)], root=tmp_path)
    assert again.folder == saved.folder and _images_under(again.folder) == written  # same content, same folder


def test_per_class_uploads_refuse_missing_or_clashing_names_and_go_over_the_cap(tmp_path):
    one = [_Upload("a.png", _png(1))]
    with pytest.raises(UploadError, match="class 2 has 1 image\\(s\\) but no name: type its name in 'Class name'"):
        save_class_uploads([("cats", one), ("   ", one)], root=tmp_path)
    with pytest.raises(UploadError, match="'Cat' and 'cat' become the same folder"):
        save_class_uploads([("Cat", one), ("cat", one)], root=tmp_path)
    with pytest.raises(UploadError, match="'a/b' and 'a_b' become the same folder \\('a_b'\\)"):
        save_class_uploads([("a/b", one), ("a_b", one)], root=tmp_path)
    with pytest.raises(UploadError, match="'cats' is used for two classes"):
        save_class_uploads([("cats", one), ("cats", one)], root=tmp_path)
    with pytest.raises(UploadError, match="class 1 has no usable class name \\('\\.\\.\\.'\\)"):
        save_class_uploads([("...", one)], root=tmp_path)
    with pytest.raises(UploadError, match="no class has any images yet"):
        save_class_uploads([("cats", [])], root=tmp_path)
    with pytest.raises(UploadError, match="uploads are limited to 0 MB"):
        save_class_uploads([("cats", one), ("dogs", one)], root=tmp_path, max_bytes=len(_png(1)))
    assert _nothing_half_written(tmp_path)


def test_class_names_are_made_safe_for_one_folder():
    assert safe_class_name("  golden retriever ") == "golden retriever"
    assert safe_class_name("../etc/passwd") == "_etc_passwd"  # no separator, no leading dot (a hidden folder)
    long = safe_class_name("x" * 300)  # shortened, with a hash of the whole name so long names stay distinct
    assert len(long) == 100 and long.startswith("x" * 93) and long != safe_class_name("x" * 299)
    assert safe_class_name("...") == ""


def test_unlabelled_uploads_stay_flat(tmp_path):
    saved = save_uploads([_Upload("a.png", _png(1)), _Upload("notes.txt", b"hi")], root=tmp_path)
    assert saved.classes == () and list(_images_under(saved.folder)) == ["a.png"]
    assert saved.skipped == ("notes.txt: not an image (bmp, gif, jpeg, jpg, png, webp)",)
    assert _load(saved.folder, tmp_path).num_classes == 0


# --------------------------------------------------------------------------- a zip of class folders
def test_a_zip_of_class_folders_is_unwrapped_and_never_writes_outside_its_folder(tmp_path):
    root = tmp_path / "data"
    data = _zip({
        "photos/cats/1.png": _png(1), "photos/cats/2.png": _png(2), "photos/cats/deeper/3.png": _png(3),
        "photos/dogs/1.png": _png(4), "photos/dogs/2.jpg": _png(5),
        "photos/dogs/readme.txt": b"not an image",
        "photos/.DS_Store": b"x", "__MACOSX/photos/cats/._1.png": b"x",
        "../evil.png": _png(9), "photos/../../evil2.png": _png(9), "/tmp/evil3.png": _png(9),
        "C:/evil4.png": _png(9), "..\\evil5.png": _png(9),
    })
    saved = extract_class_zip(data, root=root)

    assert saved.classes == ("cats", "dogs") and saved.images == 5
    assert sorted(_images_under(saved.folder)) == ["cats/1.png", "cats/2.png", "cats/3.png", "dogs/1.png", "dogs/2.jpg"]
    assert _images_under(saved.folder)["cats/3.png"] == _png(3)
    # The slipping entries are listed as skipped, and nothing landed anywhere else.
    assert sum("leaves the zip's folder" in s for s in saved.skipped) == 5
    assert any(s.startswith("photos/dogs/readme.txt: not an image") for s in saved.skipped)
    assert not any("MACOSX" in s or "DS_Store" in s for s in saved.skipped)  # metadata is no news
    everything = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert everything == {f"data/uploads/{saved.folder.name}/{f}" for f in _images_under(saved.folder)} | {
        "data/uploads/.lock", f"data/uploads/{saved.folder.name}/.upload.json"}

    splits = _load(saved.folder, tmp_path)
    assert splits.classes == ["cats", "dogs"] and len(splits.train) + len(splits.test) == 5


def test_a_zip_without_class_folders_is_unlabelled(tmp_path):
    flat = extract_class_zip(_zip({"a.png": _png(1), "b.png": _png(2)}), root=tmp_path)
    one_folder = extract_class_zip(_zip({"cats/a.png": _png(1), "cats/b.png": _png(2)}), root=tmp_path)
    assert flat.classes == () and one_folder.classes == ()
    assert sorted(_images_under(one_folder.folder)) == ["a.png", "b.png"]


def test_bad_zips_get_clear_errors_and_leave_nothing_behind(tmp_path):
    with pytest.raises(UploadError, match="not a readable zip"):
        extract_class_zip(b"PK\x03\x04 this is not a zip", root=tmp_path)
    with pytest.raises(UploadError, match="the zip holds no images .*notes.txt: not an image"):
        extract_class_zip(_zip({"cats/notes.txt": b"x", "__MACOSX/cats/._a.png": b"x"}), root=tmp_path)
    with pytest.raises(UploadError, match="'a\\?b' and 'a_b' become the same folder"):
        extract_class_zip(_zip({"a?b/1.png": _png(1), "a_b/2.png": _png(2)}), root=tmp_path)
    # The cap is on what the images unpack to: 2 MB of zeros compress to a few kB.
    bomb = _zip({"cats/big.png": bytes(2 * 2**20), "dogs/small.png": _png(1)})
    assert len(bomb) < 50_000
    with pytest.raises(UploadError, match="the zip's images \\(uncompressed\\) hold 2 MB; uploads are limited to 1 MB"):
        extract_class_zip(bomb, root=tmp_path, max_bytes=2**20)
    # A damaged entry (its bytes no longer match their checksum) stops the upload; no half folder stays.
    payload = b"A" * 5000
    damaged = _zip({"cats/a.png": payload, "dogs/b.png": _png(1)}, zipfile.ZIP_STORED).replace(b"A" * 10, b"B" * 10, 1)
    with pytest.raises(UploadError, match="an entry of the zip could not be read"):
        extract_class_zip(damaged, root=tmp_path)
    assert _nothing_half_written(tmp_path)


# --------------------------------------------------------------------------- the Data page
def _pick_upload_mode(mode: str):
    at = _page(_app(), "views/data.py")
    at.selectbox(key="data.source").set_value("upload").run()
    at.radio(key="data.upload_mode").set_value(mode).run()
    assert not at.exception, at.exception
    return at


def _two_classes_caption(at) -> bool:
    return any("2 classes" in c.value for c in at.caption)


def test_the_data_page_turns_one_upload_per_class_into_labels(runs_dir):
    at = _pick_upload_mode("classes")
    assert at.number_input(key="data.upload_classes").value == 2
    at.text_input(key="data.upload_class.0").set_value("cats")
    at.file_uploader(key="data.upload_files.0").set_value([(f"c{i}.png", _png(10 * i), "image/png") for i in range(3)])
    at.file_uploader(key="data.upload_files.1").set_value([(f"d{i}.png", _png(200 + i), "image/png") for i in range(3)])
    at.run()
    assert any("class 2 has 3 image(s) but no name" in e for e in _errors(at)), _errors(at)  # asked, not guessed
    at.text_input(key="data.upload_class.1").set_value("dogs").run()
    assert not at.exception and not _errors(at), _errors(at)
    assert _two_classes_caption(at), [c.value for c in at.caption]
    cfg = at.session_state["data_choice"].data
    assert cfg.name == "folder" and sorted(p.name for p in Path(cfg.folder).iterdir() if p.is_dir()) == ["cats", "dogs"]


def test_the_data_page_reads_labels_from_a_zip_of_class_folders(runs_dir):
    at = _pick_upload_mode("zip")
    data = _zip({f"set/{c}/{i}.png": _png(i + (100 if c == "dogs" else 0)) for c in ("cats", "dogs") for i in range(3)}
                | {"set/cats/notes.txt": b"x"})
    at.file_uploader(key="data.upload_zip").set_value(("pets.zip", data, "application/zip")).run()
    assert not at.exception and not _errors(at), _errors(at)
    assert _two_classes_caption(at), [c.value for c in at.caption]
    assert any("1 uploaded file not used" in e.label for e in at.expander)

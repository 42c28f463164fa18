"""Uploads that would cost far more than they look: image bombs, zips of countless entries, names too long in bytes."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from byol_core.data.uploads import UploadError, extract_class_zip, save_class_uploads
from tests.data.test_uploads import _png, _Upload, _zip

# Opening a 13000×13000 image makes PIL warn (over its 89 MP warning mark); refusing it is what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def _bomb_png(side: int = 13000) -> bytes:
    """A one-colour PNG of side × side pixels: about 20 kB on disk, side² × 3 bytes (507 MB) decoded to RGB."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, format="PNG")
    return out.getvalue()


def _many_entries_zip(count: int) -> bytes:
    """A valid zip (ZIP64 end records) of ``count`` empty text files, built directly: zipfile needs ~15 s for 200k."""
    local, central, offset = [], [], 0
    for i in range(count):
        name = f"notes/{i}.txt".encode()
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 33, 0, 0, 0, len(name), 0) + name
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 33, 0, 0, 0, len(name), 0, 0,
                                   0, 0, 0, offset) + name)
        local.append(header)
        offset += len(header)
    cd = b"".join(central)
    end64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(cd), offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(cd), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return b"".join(local) + cd + end64 + locator + end


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _bomb_png()


@pytest.fixture()
def decoded(monkeypatch) -> list[str]:
    """The files PIL decodes pixel data of (ImageFile.load is where every decoder runs)."""
    from PIL import ImageFile

    seen: list[str] = []
    load = ImageFile.ImageFile.load

    def counting_load(self):
        seen.append(Path(getattr(self, "filename", "") or "?").name)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    return seen


# --------------------------------------------------------------------------- image bombs
def test_an_image_bomb_in_a_zip_is_refused_at_upload_without_being_decoded(tmp_path, bomb, decoded):
    assert len(bomb) < 50_000
    data = _zip({"cats/bomb.png": bomb, "cats/ok.png": _png(1), "dogs/bomb2.png": bomb, "dogs/ok.png": _png(2)})
    saved = extract_class_zip(data, root=tmp_path)
    assert sorted(p.relative_to(saved.folder).as_posix() for p in saved.folder.rglob("*.png")) == \
        ["cats/ok.png", "dogs/ok.png"]
    reasons = [s for s in saved.skipped if "bomb" in s]
    assert len(reasons) == 2 and all("13000×13000 pixels" in s and "over the limit" in s for s in reasons), reasons
    assert not any("bomb" in name for name in decoded)  # only the header was read


def test_reading_a_folder_skips_an_image_bomb_with_its_reason_and_never_decodes_it(tmp_path, bomb, decoded):
    from byol_core.config import DataConfig
    from byol_core.data import load_data

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(bomb)
    for i in range(4):
        (folder / f"ok{i}.png").write_bytes(_png(40 * i))
    splits = load_data(DataConfig(name="folder", folder=str(folder), folder_image_size=8, root=str(tmp_path)))
    assert len(splits.train) + len(splits.test) == 4
    (reason,) = [s for s in splits.skipped_files if "bomb.png" in s]
    assert "13000×13000 pixels" in reason and "over the limit" in reason, reason
    assert set(decoded) == {f"ok{i}.png" for i in range(4)}  # the bomb: its header only


def test_a_big_jpeg_is_decoded_reduced_where_a_png_of_its_size_is_skipped(tmp_path, monkeypatch, decoded):
    """JPEG decodes at 1/2 .. 1/8 scale (PIL's draft), so only what is decoded counts against the pixel limit."""
    from PIL import Image

    from byol_core.config import DataConfig
    from byol_core.data import folder as folder_mod
    from byol_core.data import load_data

    monkeypatch.setattr(folder_mod, "MAX_IMAGE_PIXELS", 100 * 100)
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (400, 400), (200, 10, 10)).save(images / "photo.jpg", quality=90)
    Image.new("RGB", (400, 400), (10, 200, 10)).save(images / "scan.png")
    Image.new("RGB", (90, 90), (10, 10, 200)).save(images / "small.png")
    splits = load_data(DataConfig(name="folder", folder=str(images), folder_image_size=32, root=str(tmp_path)))
    assert len(splits.train) + len(splits.test) == 2
    assert [Path(s.split(":")[0]).name for s in splits.skipped_files] == ["scan.png"]


# --------------------------------------------------------------------------- zips of countless entries
def test_a_zip_of_too_many_entries_is_refused_from_its_central_directory(tmp_path, monkeypatch):
    from byol_core.data import uploads

    data = _many_entries_zip(200_000)

    def no_per_entry_work(*args, **kwargs):
        raise AssertionError("the zip's entries were read one by one")

    monkeypatch.setattr(uploads.zipfile, "ZipFile", no_per_entry_work)
    with pytest.raises(UploadError, match=r"the zip holds 200000 entries; uploads are limited to \d+ entries"):
        extract_class_zip(data, root=tmp_path)
    assert not (tmp_path / "uploads").exists()


def test_the_entry_count_is_read_from_plain_and_zip64_end_records():
    from byol_core.data import uploads

    assert uploads.zip_entry_count(_zip({"a/1.png": _png(1), "b/2.png": _png(2)})) == 2
    assert uploads.zip_entry_count(_many_entries_zip(70_000)) == 70_000
    # An end record may understate the count; zipfile reads the directory by its size, so the walk counts.
    lying = bytearray(_many_entries_zip(70_000))
    struct.pack_into("<2Q", lying, len(lying) - 22 - 20 - 56 + 24, 1, 1)  # the ZIP64 record: "1 entry"
    assert uploads.zip_entry_count(bytes(lying)) == 70_000
    assert uploads.zip_entry_count(bytes(lying), stop_after=100) == 101
    assert uploads.zip_entry_count(b"PK\x03\x04 not a zip") is None  # zipfile then says what is wrong


# --------------------------------------------------------------------------- names too long in bytes
def test_class_and_file_names_too_long_in_bytes_are_shortened_and_stay_distinct(tmp_path):
    from byol_core.config import DataConfig
    from byol_core.data import load_data

    cat, dog = "猫" * 99 + "甲", "猫" * 99 + "乙"   # 100 characters, 300 bytes: each alone over the 255-byte limit
    photo = "写真" * 50                              # a 100-character, 300-byte file name
    saved = save_class_uploads([(cat, [_Upload(f"{photo}.png", _png(1)), _Upload(f"{photo}X.png", _png(2))]),
                                (dog, [_Upload(f"{photo}.png", _png(3))])], root=tmp_path)
    assert saved.images == 3 and len(saved.classes) == 2
    names = [p.relative_to(saved.folder).parts for p in saved.folder.rglob("*")]
    assert all(len(part.encode()) <= 255 for parts in names for part in parts)
    files = [p for p in saved.folder.rglob("*.png")]
    assert len(files) == 3 and all(p.name.startswith("写真") for p in files)
    splits = load_data(DataConfig(name="folder", folder=str(saved.folder), folder_image_size=8, root=str(tmp_path)))
    assert len(splits.classes) == 2 and all(c.startswith("猫" * 10) for c in splits.classes)


# --------------------------------------------------------------------------- the Data page
def test_the_data_page_unpacks_an_upload_once_not_on_every_rerun(runs_dir, monkeypatch):
    from byol_core.data import uploads
    from tests.app_helpers import _app, _errors, _page

    calls = []
    extract = uploads.extract_class_zip
    monkeypatch.setattr(uploads, "extract_class_zip", lambda *a, **k: calls.append(1) or extract(*a, **k))
    at = _page(_app(), "views/data.py")
    at.selectbox(key="data.source").set_value("upload").run()
    at.radio(key="data.upload_mode").set_value("zip").run()
    at.file_uploader(key="data.upload_zip").set_value(
        ("pets.zip", _zip({"cats/1.png": _png(1), "dogs/1.png": _png(200)}), "application/zip")).run()
    assert not at.exception and not _errors(at), _errors(at)
    at.run()
    at.button(key="aug.new_draw").click().run()
    assert not at.exception and len(calls) == 1, len(calls)
    # A refused upload is not checked again on every rerun either; its message stays.
    at.file_uploader(key="data.upload_zip").set_value(("notes.zip", _zip({"a.txt": b"x"}), "application/zip")).run()
    at.run()
    assert len(calls) == 2 and any("the zip holds no images" in e for e in _errors(at)), _errors(at)


def test_a_name_the_file_system_still_refuses_is_reported_as_too_long_not_as_a_full_disk(tmp_path, monkeypatch):
    from byol_core.data import uploads

    monkeypatch.setattr(uploads, "MAX_NAME_BYTES", 10_000)  # as if shortening missed a case
    with pytest.raises(UploadError, match="a class or file name of the upload is too long for this file system") as err:
        save_class_uploads([("猫" * 100, [_Upload("a.png", _png(1))])], root=tmp_path)
    assert "disk space" not in str(err.value)

"""Uploads and the runs that use them: kept while a run refers to one, stored once per content, deleted on request."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import pytest

from byol_core.config import DataConfig
from byol_core.data.uploads import KEEP_UNUSED_UPLOADS, UploadError, extract_class_zip, list_uploads, save_uploads
from byol_core.lab.run_store import RunStore
from byol_core.lab.uploads_in_use import delete_upload, remove_unused_uploads, runs_using, upload_uses
from byol_core.presets import get_preset
from tests.app_helpers import _app, _errors, _page
from tests.data.test_uploads import _png, _Upload


def _cfg_on(folder: Path | str):
    return dataclasses.replace(get_preset("tiny"), data=DataConfig(name="folder", folder=str(folder)))


def _save(root: Path | str, shade: int):
    return save_uploads([_Upload(f"{shade}.png", _png(shade))], root=root)


def test_an_upload_a_run_uses_outlives_any_number_of_later_uploads(tmp_path, store):
    root = tmp_path / "data"
    used = _save(root, 1)
    store.create("byol", _cfg_on(used.folder))
    later = []
    for i in range(KEEP_UNUSED_UPLOADS + 3):
        later.append(_save(root, 10 + i).folder)
        remove_unused_uploads(store, root)  # what the Data page does after each new upload
    assert used.folder.is_dir()
    # Only uploads no run uses were cleaned up, oldest first: the newest few stay.
    assert [u.folder for u in list_uploads(root)] == later[::-1][:KEEP_UNUSED_UPLOADS] + [used.folder]


def test_a_run_refers_to_an_upload_by_relative_path_subfolder_or_a_config_that_no_longer_validates(
        tmp_path, store, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative, inside, damaged, free = (_save("data", shade).folder for shade in (1, 2, 3, 4))
    by_path = store.create("byol", _cfg_on(relative))                         # data/uploads/<digest>
    by_class = store.create("byol", _cfg_on(tmp_path / inside / "cats"))     # a class folder inside it
    invalid = store.create("byol", _cfg_on(damaged))
    record = json.loads(invalid.config_path.read_text())
    record["config"]["seed"] = "not a number"
    invalid.config_path.write_text(json.dumps(record))
    uses = {u.upload.folder.name: u.runs for u in upload_uses(store, "data")}
    assert uses == {relative.name: (by_path.id,), inside.name: (by_class.id,), damaged.name: (invalid.id,),
                    free.name: ()}
    assert remove_unused_uploads(store, "data", keep=0) == [free]
    assert runs_using(store, tmp_path / damaged) == (invalid.id,)


def test_deleting_an_upload_a_run_uses_is_refused_naming_the_runs_and_allowed_once_they_are_gone(tmp_path, store):
    root = tmp_path / "data"
    used = _save(root, 1)
    first, second = (store.create("byol", _cfg_on(used.folder)) for _ in range(2))
    for run in (first, second):
        run.set_status("finished")
    with pytest.raises(UploadError, match=rf"upload {used.folder.name} is used by 2 run\(s\): "
                                          rf"({first.id}|{second.id}), .*delete those runs first"):
        delete_upload(store, used.folder, root)
    assert used.folder.is_dir()
    store.delete(first.id)
    store.delete(second.id)
    delete_upload(store, used.folder, root)
    assert not used.folder.exists() and list_uploads(root) == []
    with pytest.raises(UploadError, match="is not an upload folder"):
        delete_upload(store, tmp_path, root)  # only folders in uploads/ are ever removed


def test_the_same_zip_uploaded_twice_is_stored_once(tmp_path):
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as zf:
        zf.writestr("cats/1.png", _png(1))
        zf.writestr("dogs/1.png", _png(2))
    first = extract_class_zip(data.getvalue(), root=tmp_path)
    second = extract_class_zip(data.getvalue(), root=tmp_path)
    assert first.folder == second.folder and [u.folder for u in list_uploads(tmp_path)] == [first.folder]
    assert [p.name for p in (tmp_path / "uploads").iterdir() if p.is_dir()] == [first.folder.name]


def test_a_repeated_upload_reports_the_images_it_left_out_again(tmp_path):
    from tests.data.test_upload_limits import _bomb_png

    files = [_Upload("ok.png", _png(1)), _Upload("huge.png", _bomb_png(9000))]
    first = save_uploads(files, root=tmp_path)
    again = save_uploads(files, root=tmp_path)
    assert first.folder == again.folder and again.images == first.images == 1
    assert [s.split(":")[0] for s in again.skipped] == ["huge.png"]


# --------------------------------------------------------------------------- the Data page
def test_the_data_page_lists_uploads_with_their_disk_use_and_runs_and_deletes_only_unused_ones(runs_dir):
    used, free = _save("data", 1), _save("data", 2)
    run = RunStore(runs_dir).create("byol", _cfg_on(used.folder))
    at = _page(_app(), "views/data.py")
    at.selectbox(key="data.source").set_value("upload").run()
    (panel,) = [e for e in at.expander if e.label.startswith("Uploads on this machine")]
    total = sum(u.bytes for u in list_uploads("data"))
    assert "2 uploads" in panel.label and f"{total / 1e3:.1f} kB" in panel.label, panel.label
    text = " ".join(m.value for m in at.markdown)
    assert run.id in text and used.folder.name in text and free.folder.name in text
    assert at.button(key=f"data.delete_upload.{used.folder.name}").disabled  # in use: named, not deletable
    at.button(key=f"data.delete_upload.{free.folder.name}").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    assert not free.folder.exists() and used.folder.is_dir()
    assert any("1 upload," in e.label for e in at.expander), [e.label for e in at.expander]
    # The upload in the picker is the data set from this run on: not deletable from under the page either.
    at.radio(key="data.upload_mode").set_value("none").run()
    at.file_uploader(key="data.upload").set_value([("new.png", _png(3), "image/png")]).run()
    picked = Path(at.session_state["data_choice"].data.folder)
    assert picked.parent == used.folder.parent and at.button(key=f"data.delete_upload.{picked.name}").disabled

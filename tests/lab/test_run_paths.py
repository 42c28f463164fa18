"""A run is a real folder inside the runs folder: links out of it and ids no file system takes are refused."""

from __future__ import annotations

import json

import pytest

from byol_core.cli import main
from byol_core.config import ExperimentConfig
from byol_core.lab.run_store import RunStore


def _outside_run(tmp_path):
    """A run folder made by a store elsewhere, linked into ``runs/`` under another name."""
    elsewhere = RunStore(tmp_path / "elsewhere").create("byol", ExperimentConfig(name="outside"))
    status_before = elsewhere.status_path.read_text()
    runs = tmp_path / "runs"
    runs.mkdir()
    link = runs / "20990101-000000-byol-linked-0000"
    link.symlink_to(elsewhere.path, target_is_directory=True)
    return RunStore(runs), link, elsewhere, status_before


def test_a_symlinked_run_folder_is_not_listed_nor_opened(tmp_path):
    store, link, elsewhere, status_before = _outside_run(tmp_path)
    inside = store.create("byol", ExperimentConfig(name="inside"))
    assert [r.id for r in store.list()] == [inside.id]
    with pytest.raises(FileNotFoundError, match="is a link.*not a run folder of"):
        store.get(link.name)
    assert elsewhere.status_path.read_text() == status_before


def test_no_status_or_annotation_is_written_through_a_link(tmp_path, capsys):
    store, link, elsewhere, status_before = _outside_run(tmp_path)
    for argv in (["runs", "rename", link.name, "x"], ["runs", "archive", link.name], ["resume", link.name],
                 ["runs", "delete", link.name]):
        assert main([*argv, "--runs-dir", str(store.root)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "is a link" in err and "Traceback" not in err
    assert elsewhere.status_path.read_text() == status_before
    assert not elsewhere.annotations_path.exists() and link.is_symlink() and elsewhere.path.is_dir()
    assert main(["runs", "--runs-dir", str(store.root)]) == 0
    assert link.name not in capsys.readouterr().out


def test_a_run_folder_whose_config_links_out_is_not_a_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create("byol", ExperimentConfig(name="inside"))
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"kind": "byol", "config": {}}))
    run.config_path.unlink()
    run.config_path.symlink_to(secret)
    assert store.list() == []
    with pytest.raises(FileNotFoundError, match="is a link"):
        store.get(run.id)


def test_a_linked_runs_folder_itself_still_works(tmp_path):
    real = RunStore(tmp_path / "real")
    run = real.create("byol", ExperimentConfig(name="kept"))
    (tmp_path / "runs").symlink_to(real.root, target_is_directory=True)
    linked = RunStore(tmp_path / "runs")
    assert [r.id for r in linked.list()] == [run.id]
    assert linked.get(run.id).read_config()[0].name == "kept"


def test_a_run_id_longer_than_a_file_name_is_refused_by_name(store: RunStore):
    store.root.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"is not a run id: it is 300 characters long"):
        store.get("a" * 300)

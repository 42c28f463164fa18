"""The pages' run list equals a fresh read of the runs folder after every kind of change, and reuses what did not
change."""

from __future__ import annotations

from byol_core.lab import runner
from byol_core.lab.annotations import annotate
from byol_core.lab.plans import plan
from byol_core.lab.summary import list_summaries as read_all
from byol_core.presets import get_preset
from dashboard import run_list


def _same(store) -> list:
    cached = run_list.list_summaries(store)
    assert cached == read_all(store)
    return cached


def test_the_run_list_follows_every_change_and_rereads_only_changed_runs(store):
    tiny = get_preset("tiny")
    first = runner.create(store, plan("byol", tiny, name="first"))
    second = runner.create(store, plan("scratch", tiny, name="second"))
    for run in (first, second):
        run.set_status("finished", results={"test_accuracy": 0.5})
    listed = _same(store)
    again = _same(store)
    assert [a is b for a, b in zip(listed, again, strict=True)] == [True, True]  # nothing re-read

    annotate(first, name="renamed")
    after_rename = _same(store)
    by_id = {s.id: s for s in after_rename}
    assert by_id[first.id].display_name == "renamed"
    assert by_id[second.id] is {s.id: s for s in again}[second.id]  # the other run was not read again

    second.set_status("failed", error="out of memory")
    assert {s.id: s.state for s in _same(store)} == {first.id: "finished", second.id: "failed"}

    third = runner.create(store, plan("byol", tiny, name="third"))  # queued by this process: always read again
    assert {s.id: s.state for s in _same(store)}[third.id] == "queued"
    third.set_status("stopped")
    assert {s.id: s.state for s in _same(store)}[third.id] == "stopped"

    store.delete(second.id)
    assert second.id not in {s.id for s in _same(store)}


def test_a_probe_is_read_again_when_its_source_run_goes(store):
    tiny = get_preset("tiny")
    source = runner.create(store, plan("simclr", tiny))
    source.save_encoder({})  # a probe needs its source's encoder file to be planned
    source.set_status("finished")
    probe = runner.create(store, plan("linear", tiny, source_config=tiny, source_run=source.id))
    probe.set_status("finished")
    with_source = {s.id: s.method for s in _same(store)}[probe.id]  # names its source's family (SimCLR)
    store.delete(source.id)
    without = {s.id: s.method for s in _same(store)}[probe.id]
    assert with_source != without, with_source

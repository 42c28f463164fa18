"""A run's name, note and archived flag: edits from several processes at once are never undone."""

import multiprocessing

from byol_core.config import ExperimentConfig
from byol_core.lab.annotations import annotate, read_annotations
from byol_core.lab.run_store import Run

EDITS = 200


def _count_up(run_dir: str, field: str, edits: int, ready, go) -> None:
    """Add one to this process's counter field ``edits`` times, each time a whole-file read-modify-write.

    Only this process changes ``field``, so it reads back its own last value unless another process's
    edit (of the other field) wrote back a stale copy of it: a lost update leaves the counter short.
    """
    run = Run(run_dir)
    ready.set()
    go.wait(60)
    for _ in range(edits):
        current = getattr(read_annotations(run), field)
        annotate(run, **{field: str(int(current or 0) + 1)})


def test_name_and_note_edited_at_once_from_two_processes_lose_no_edit(store):
    run = store.create("byol", ExperimentConfig(name="shared"))
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    readies = [ctx.Event(), ctx.Event()]
    procs = [ctx.Process(target=_count_up, args=(str(run.path), field, EDITS, ready, go))
             for field, ready in zip(("name", "note"), readies)]
    for proc in procs:
        proc.start()
    try:
        assert all(ready.wait(120) for ready in readies)
        go.set()  # both start editing together
    finally:
        for proc in procs:
            proc.join(300)
    assert [proc.exitcode for proc in procs] == [0, 0]
    final = read_annotations(run)
    assert (final.name, final.note) == (str(EDITS), str(EDITS)), "edits from the other process were undone"

"""Safe file I/O: atomic writes and the cross-process lock."""

import multiprocessing
import time

import pytest

from byol_core.files import exclusive_lock, read_json_object


def _hold(path, seconds, started):
    with exclusive_lock(path):
        started.set()
        time.sleep(seconds)


def test_exclusive_lock_holds_across_processes_and_times_out_with_the_file_named(tmp_path):
    lock = tmp_path / "some.lock"
    started = multiprocessing.get_context("spawn").Event()
    holder = multiprocessing.get_context("spawn").Process(target=_hold, args=(lock, 3.0, started))
    holder.start()
    try:
        assert started.wait(60)
        with pytest.raises(TimeoutError, match="some.lock stayed locked"), exclusive_lock(lock, timeout=0.2):
            pass
        t0 = time.monotonic()
        with exclusive_lock(lock, timeout=60):  # waits for the holder, then gets it
            assert time.monotonic() - t0 > 0.1
    finally:
        holder.join(60)
    with exclusive_lock(lock, timeout=0.2):  # free again once the holder is gone
        pass


def test_a_run_file_nested_too_deep_reads_as_damaged_not_a_recursion_error(tmp_path):
    path = tmp_path / "status.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    value, problem = read_json_object(path)
    assert value is None and "nested more than" in problem
    path.write_text('{"step": 1' + "0" * 5000 + "}")  # more digits than Python converts to an int
    value, problem = read_json_object(path)
    assert value is None and "not valid JSON" in problem

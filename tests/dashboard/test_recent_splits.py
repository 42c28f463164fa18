"""The dashboard reuses a data set's splits for a few seconds: a page's reruns do not list a large folder again."""
from pathlib import Path

import torch

from byol_core.config import DataConfig
from byol_core.data import DataSplits, ImageSet
from dashboard import state


def _splits(tag: int) -> DataSplits:
    empty = ImageSet(torch.zeros(0, 1, 2, 2, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    return DataSplits(name="folder", train=empty, val=empty, test=empty, labelled_train=empty, unlabeled=empty,
                      classes=[f"c{tag}"], mean=(0.5,), std=(0.5,), skipped_files=[])


class _Loader:
    def __init__(self) -> None:
        self.calls: list[DataConfig] = []

    def __call__(self, cfg: DataConfig, progress=None) -> DataSplits:
        self.calls.append(cfg)
        return _splits(len(self.calls))


def test_splits_are_reused_while_asked_for_then_loaded_again(tmp_path: Path):
    now = [100.0]
    load = _Loader()
    recent = state.RecentSplits(load, clock=lambda: now[0])
    cfg = DataConfig(name="folder", folder=str(tmp_path))
    first = recent.get(cfg)
    now[0] += state.SPLITS_REUSE_S / 2
    again = recent.get(cfg)
    assert len(load.calls) == 1 and again.classes == first.classes
    again.classes.append("mine")  # a caller's list is its own
    assert recent.get(cfg).classes == ["c1"]
    now[0] += state.SPLITS_REUSE_S  # nobody asked for a while: the loader looks at the disk again
    assert recent.get(cfg).classes == ["c2"] and len(load.calls) == 2
    # Asked for every few seconds (a person clicking through filters): reused, but never past the maximum age.
    asks = int(state.SPLITS_MAX_AGE_S // (state.SPLITS_REUSE_S / 2)) + 2
    seen = []
    for _ in range(asks):
        now[0] += state.SPLITS_REUSE_S / 2
        seen.append(recent.get(cfg).classes[0])
    assert seen[0] == "c2" and seen[-1] == "c3" and len(load.calls) == 3


def test_a_deleted_folder_is_never_answered_from_memory(tmp_path: Path):
    load = _Loader()
    recent = state.RecentSplits(load, clock=lambda: 0.0)
    folder = tmp_path / "upload"
    folder.mkdir()
    cfg = DataConfig(name="folder", folder=str(folder))
    recent.get(cfg)
    folder.rmdir()
    recent.get(cfg)
    assert len(load.calls) == 2


def test_other_configs_load_their_own_and_few_are_kept(tmp_path: Path):
    load = _Loader()
    recent = state.RecentSplits(load, clock=lambda: 0.0, size=2)
    a, b, c = (DataConfig(name="folder", folder=str(tmp_path), split_seed=s) for s in (1, 2, 3))
    assert [recent.get(x).classes for x in (a, b, c)] == [["c1"], ["c2"], ["c3"]]
    recent.get(c)
    recent.get(a)  # the oldest was dropped: loaded again
    assert load.calls == [a, b, c, a]

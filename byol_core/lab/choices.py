"""The person's data and view choices: one object every page reads, and what a job takes from it.

The Data page holds a :class:`DataChoice`: the data set, its view size, and only the view fields the
person *changed* from that data set's tuned views. A job starts from its preset and takes the data set,
the view size and those changed fields (:meth:`DataChoice.view_overrides`), so a preset's tuned views are
kept unless the person changed them: choosing Fashion-MNIST and training with ``cpu-quick`` trains
``cpu-quick``'s views, not the views another data set happened to show before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import AugmentConfig, DataConfig, to_dict, with_overrides
from ..presets import TUNED_PRESETS, byol_paper_augment, get_preset, preset_for
from .plans import leaves

# View size that suits each data set's native resolution (digits are 8x8, STL10 96x96).
DEFAULT_IMAGE_SIZE = {"digits": 16, "fashion-mnist": 28, "cifar10": 32, "stl10": 96, "folder": 64}
# Set from the data set, not edits of its views: a new data set brings its own.
DATA_SET_VIEW_FIELDS = ("image_size",)


def natural_image_size(dataset: str) -> int:
    return DEFAULT_IMAGE_SIZE.get(dataset, 32)


def tuned_views(dataset: str, image_size: int | None = None) -> AugmentConfig:
    """The views a data set starts with: those of the preset tuned for it (no flips for digits), else the paper's."""
    size = image_size or natural_image_size(dataset)
    if dataset in TUNED_PRESETS:
        return dataclasses.replace(get_preset(preset_for(dataset)).augment, image_size=size)
    return byol_paper_augment(size)


def view_edits(base: AugmentConfig, edited: AugmentConfig) -> dict[str, Any]:
    """The dotted view fields (``"view1.blur_p"``) where ``edited`` differs from ``base``, the view size left out."""
    old, new = leaves(to_dict(base)), leaves(to_dict(edited))
    return {k: v for k, v in new.items() if old.get(k) != v and k not in DATA_SET_VIEW_FIELDS}


@dataclass(frozen=True)
class DataChoice:
    """What the Data page chose: the data set (``source``: what its select shows), the view size, the changed views."""

    data: DataConfig = field(default_factory=lambda: DataConfig(name="digits"))
    source: str = "digits"
    image_size: int = DEFAULT_IMAGE_SIZE["digits"]
    edits: Mapping[str, Any] = field(default_factory=dict)

    @property
    def base_views(self) -> AugmentConfig:
        """The data set's tuned views at the chosen size: what the edits are changes from."""
        return tuned_views(self.data.name, self.image_size)

    @property
    def base_preset(self) -> str:
        return preset_for(self.data.name)

    @property
    def augment(self) -> AugmentConfig:
        """The views the Data page shows: the tuned ones with the person's changes."""
        return with_overrides(self.base_views, dict(self.edits))

    def with_augment(self, augment: AugmentConfig) -> DataChoice:
        """The choice after the person set the views to ``augment`` (only the fields that differ are kept as edits)."""
        changed = dataclasses.replace(self, image_size=augment.image_size)
        return dataclasses.replace(changed, edits=view_edits(changed.base_views, augment))

    def with_data(self, data: DataConfig, source: str | None = None) -> DataChoice:
        """A new data set keeps the person's view changes and takes its own view size."""
        size = self.image_size if data.name == self.data.name else natural_image_size(data.name)
        return dataclasses.replace(self, data=data, source=source or data.name, image_size=size)

    def without_edits(self) -> DataChoice:
        return dataclasses.replace(self, edits={})

    def view_overrides(self) -> dict[str, Any]:
        """What a job takes from the views: the view size and the changed fields, as dotted ``augment`` fields."""
        return {"image_size": self.image_size, **self.edits}

    def edits_text(self) -> list[str]:
        """One line per changed field: ``view1.blur_p: 0.5 → 1``."""
        base = leaves(to_dict(self.base_views))
        return [f"{k}: {_short(base.get(k))} → {_short(v)}" for k, v in sorted(self.edits.items())]


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

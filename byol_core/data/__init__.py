"""Data: what a data set is (:mod:`.types`), where images come from (:mod:`.builtin`, :mod:`.folder`,
:mod:`.uploads`), how they are split (:mod:`.splits`) and the cached loader that ties them
together (:mod:`.loading`). The lowest wing above the root's modules (``config``, ``files``, ``distributed`` …): it imports only those.
"""

from .loading import available_datasets, clear_cache, load_data
from .types import DataError, DataSplits, ImageSet, Progress, Source

__all__ = ["DataError", "DataSplits", "ImageSet", "Progress", "Source", "available_datasets", "clear_cache",
           "load_data"]

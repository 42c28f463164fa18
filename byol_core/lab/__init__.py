"""The lab: runs on disk, the stage registry, plans, guard rails, the runner, background jobs and export.

Importing the package registers the built-in stages (:mod:`.builtin_stages`); the registry itself
(:mod:`.stages`) never imports its entries.
"""

from .builtin_stages import BUILTIN_STAGES, LEGACY_NAMES
from .stages import register

for _stage in BUILTIN_STAGES:
    register(_stage, legacy_names=LEGACY_NAMES.get(_stage.name, ()))

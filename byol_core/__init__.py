"""BYOL Lab's learning core: BYOL (Grill et al. 2020) pretraining, evaluation and experiments.

Never imports streamlit: the dashboard is a thin view over this package.
"""

import os

# OpenMP threads that spin while they wait collapse when another process shares the cores (a
# browser, a second job): measured 0.6x with a busy core beside a job, against 1.2x with passive
# waiting (benchmarks/thread_policy.py). Set before torch loads its OpenMP runtime; a value the
# user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import studies  # noqa: F401 - registers the built-in stages: the lab's, then the studies'
from .config import (  # after the OpenMP policy above
    AugmentConfig,
    BYOLConfig,
    ConfigError,
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    SupervisedConfig,
    ViewAugmentConfig,
    load_config,
    save_config,
    with_overrides,
)
from .lab.run_store import Run, RunStore
from .presets import PRESETS, byol_paper_augment, get_preset

__all__ = [
    "PRESETS",
    "AugmentConfig",
    "BYOLConfig",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OptimConfig",
    "Run",
    "RunStore",
    "RuntimeConfig",
    "SupervisedConfig",
    "ViewAugmentConfig",
    "byol_paper_augment",
    "get_preset",
    "load_config",
    "save_config",
    "with_overrides",
]
__version__ = "0.1.0"

"""BYOL Lab's learning core: BYOL (Grill et al. 2020) pretraining, evaluation and experiments.

Never imports streamlit: the dashboard is a thin view over this package.
"""

from .config import (
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
from .presets import PRESETS, byol_paper_augment, get_preset
from .runs import Run, RunStore

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

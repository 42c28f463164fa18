"""Experiment configuration: small dataclasses validated at construction (:mod:`byol_core.schema`).

Every field carries its help and allowed range, so one schema drives validation, ``--set`` parsing in
the CLI and the controls the dashboard generates. Also here: the config as JSON and overrides.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .schema import ConfigError, Validated, from_dict, missing_fields
from .schema import setting as _f
from .text import clipped, json_nesting, parse_json

MAX_SEED = 2**32 - 1  # what every seeded generator takes (numpy's legacy seeding is the narrowest; torch's is 2**64)
MAX_THREADS = 1024  # far above this torch's CPU thread pools fail to start ("could not create a primitive")
DEVICES = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")  # what device.resolve_device and the training code support
MAX_CONFIG_BYTES, MAX_NESTING = 2**20, 16  # the largest and deepest JSON read as a config


# --------------------------------------------------------------------------- data
DATASETS = ("digits", "fashion-mnist", "cifar10", "stl10", "folder")
LABELLED_SUBSETS = ("per seed", "fixed")
DERIVED_FIELDS = ("data.subset_seed",)  # set from other fields (the run's seed): diffs and comparison keys skip them


@dataclass(frozen=True)
class DataConfig(Validated):
    name: str = _f("digits", "Data set to use.", choices=DATASETS)
    root: str = _f("data", "Where data sets are stored or downloaded to.")
    folder: str | None = _f(None, "Image folder for name='folder' (class subfolders optional).")
    folder_image_size: int = _f(96, "Folder images are centre-cropped square and resized to this side.",
                                min=8, max=1024)
    # No count cap by default: a folder is decoded once into a disk cache, so the limit is the free disk (checked
    # before the first pass) and the pixels per image. Configs that saved the old 20,000 keep it, as they ran.
    max_folder_images: int | None = _f(None, "Refuse image folders with more images than this (None: no cap; "
                                             "the folder's cache must fit the free disk).", min=1)
    download: bool = _f(True, "Download torchvision data sets when they are not on disk.")
    test_fraction: float = _f(0.2, "Held-out share for sets without a test split.", min=0.05, max=0.9)
    # 0 by default so configs saved before this field existed load as what they ran: no validation split.
    val_fraction: float = _f(0.0, "Share of each class of the training split held out for validation "
                                  "(checkpoint choice, curves during training); 0: none.", min=0.0, max=0.5)
    label_fraction: float = _f(1.0, "Share of training labels kept (stratified).", min=0.001, max=1.0)
    max_train_images: int | None = _f(None, "Cap on training images (None: all).", min=1)
    max_test_images: int | None = _f(None, "Cap on test images (None: all).", min=1)
    max_unlabeled_images: int | None = _f(None, "Cap on extra unlabeled images (STL10).", min=0)
    split_seed: int = _f(0, "Seed of the train/test split, validation split and caps (and of a fixed labelled "
                            "subset).", min=0, max=MAX_SEED)
    labelled_subset: str = _f("per seed", "Which training images keep their labels: 'per seed' draws a new "
                                          "stratified subset with each training seed, so an interval over seeds "
                                          "covers that draw too; 'fixed' keeps one subset for every seed.",
                              choices=LABELLED_SUBSETS)
    subset_seed: int = _f(0, "Seed of a 'per seed' labelled subset: the run's seed, set by ExperimentConfig.",
                          min=0, max=MAX_SEED)
    stratified_caps: bool = _f(True, "Caps on training, validation and test images keep each class's share "
                                     "(off: a plain random draw).")
    # Configs saved before these fields existed ran with one fixed subset and random caps; they load as such.
    LEGACY_DEFAULTS: ClassVar[dict[str, Any]] = {"labelled_subset": "fixed", "stratified_caps": False}

    def _check(self) -> None:
        if self.name == "folder" and not self.folder:
            raise ConfigError("data.folder is empty; set data.folder=<path to an image folder> "
                              "when data.name is 'folder'.")


# --------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class ViewAugmentConfig(Validated):
    """One view's random augmentations, in the order they are applied (BYOL paper, Table 6)."""

    crop_scale_min: float = _f(0.08, "Smallest crop area, as a share of the image.", min=0.01, max=1.0, op="crop")
    crop_scale_max: float = _f(1.0, "Largest crop area, as a share of the image.", min=0.01, max=1.0, op="crop")
    crop_ratio_min: float = _f(3 / 4, "Smallest crop aspect ratio (w/h).", min=0.1, max=10.0, op="crop")
    crop_ratio_max: float = _f(4 / 3, "Largest crop aspect ratio (w/h).", min=0.1, max=10.0, op="crop")
    flip_p: float = _f(0.5, "Probability of a horizontal flip.", min=0.0, max=1.0, op="flip")
    jitter_p: float = _f(0.8, "Probability of colour jitter.", min=0.0, max=1.0, op="jitter")
    brightness: float = _f(0.4, "Brightness jitter strength.", min=0.0, max=1.0, op="jitter")
    contrast: float = _f(0.4, "Contrast jitter strength.", min=0.0, max=1.0, op="jitter")
    saturation: float = _f(0.2, "Saturation jitter strength.", min=0.0, max=1.0, op="jitter")
    hue: float = _f(0.1, "Hue jitter strength.", min=0.0, max=0.5, op="jitter")
    grayscale_p: float = _f(0.2, "Probability of converting to grayscale.", min=0.0, max=1.0, op="grayscale")
    blur_p: float = _f(1.0, "Probability of Gaussian blur.", min=0.0, max=1.0, op="blur")
    # Sigmas are in pixels of the view at any image_size, as in the paper (0.1-2.0), so blur shows at 16 px too;
    # the kernel is odd, >= 10% of the side and wide enough for +-3 sigma (augment_ops.blur_kernel_size).
    blur_sigma_min: float = _f(0.1, "Smallest blur sigma, in pixels of the view.", min=0.01, max=10.0, op="blur")
    blur_sigma_max: float = _f(2.0, "Largest blur sigma, in pixels of the view.", min=0.01, max=10.0, op="blur")
    solarize_p: float = _f(0.0, "Probability of solarization.", min=0.0, max=1.0, op="solarize")
    solarize_threshold: float = _f(0.5, "Pixels above this (0..1) are inverted.", min=0.0, max=1.0, op="solarize")

    def _check(self) -> None:
        for lo, hi in (("crop_scale_min", "crop_scale_max"), ("crop_ratio_min", "crop_ratio_max"),
                       ("blur_sigma_min", "blur_sigma_max")):
            if getattr(self, lo) > getattr(self, hi):
                raise ConfigError(f"ViewAugmentConfig.{lo} = {getattr(self, lo)} is larger than "
                                  f"{hi} = {getattr(self, hi)}; make {lo} <= {hi}.")


AUGMENT_BACKENDS = ("kornia", "fast")


@dataclass(frozen=True)
class AugmentConfig(Validated):
    image_size: int = _f(32, "Side of the square views fed to the network, in pixels.", min=8, max=512)
    # 'fast' is proven distribution-equal to the Kornia reference (tests/test_augment.py) and is
    # several times faster; Kornia stays the reference and drives the dashboard's preview.
    backend: str = _f("fast", "Augmentation used for training: 'fast' (batched tensor ops) or 'kornia'.",
                      choices=AUGMENT_BACKENDS)
    view1: ViewAugmentConfig = field(
        default_factory=lambda: ViewAugmentConfig(blur_p=1.0, solarize_p=0.0),
        metadata={"help": "First view (paper default: always blurred, never solarized)."},
    )
    view2: ViewAugmentConfig = field(
        default_factory=lambda: ViewAugmentConfig(blur_p=0.1, solarize_p=0.2),
        metadata={"help": "Second view (paper default: rarely blurred, sometimes solarized)."},
    )


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelConfig(Validated):
    backbone: str = _f("resnet18", "torchvision model name, or 'small-cnn' (a built-in 4-layer convnet).")
    small_stem: bool = _f(True, "3x3 stride-1 first conv and no max-pool, for 28-64 px images (ResNets).")
    hidden_layer: str | None = _f(None, "Name of the module whose output is the representation "
                                        "(for any nn.Module; None: the backbone's pooled features).")
    width: int = _f(32, "Channel width of the 'small-cnn' backbone.", min=4, max=512)
    projector_hidden: int = _f(4096, "Hidden width of the projector MLP.", min=8, max=16384)
    projector_out: int = _f(256, "Output width of projector and predictor.", min=8, max=4096)
    predictor_hidden: int = _f(4096, "Hidden width of the predictor MLP.", min=8, max=16384)


# --------------------------------------------------------------------------- optimisation
OPTIMIZERS = ("adam", "adamw", "sgd", "lars")


@dataclass(frozen=True)
class OptimConfig(Validated):
    optimizer: str = _f("adam", "Optimizer.", choices=OPTIMIZERS)
    lr: float = _f(1e-4, "Peak learning rate.", min=1e-7, max=10.0)
    weight_decay: float = _f(0.0, "Weight decay.", min=0.0, max=1.0)
    momentum: float = _f(0.9, "Momentum (sgd, lars).", min=0.0, max=0.999)
    warmup_epochs: float = _f(0.0, "Linear warm-up length, in epochs.", min=0.0, max=1000.0)
    schedule: str = _f("cosine", "Learning-rate decay after warm-up.", choices=("cosine", "constant"))
    batch_size: int = _f(256, "Images per step.", min=2, max=65536)
    epochs: float = _f(10.0, "Training length, in epochs (fractions allowed).", min=0.01, max=10000.0)
    # With 1% of labels an epoch is one or two steps; a floor keeps label-efficiency runs meaningful.
    min_steps: int = _f(0, "Train for at least this many steps, whatever the epochs.", min=0)


@dataclass(frozen=True)
class BYOLConfig(Validated):
    tau_base: float = _f(0.99, "EMA decay of the target at the start; rises to 1 on a cosine schedule.",
                         min=0.0, max=1.0)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-4, epochs=50),
        metadata={"help": "BYOL pretraining optimisation."},
    )
    knn_every_epochs: int = _f(0, "Run a kNN check on the validation split every N epochs (0: never).", min=0)


@dataclass(frozen=True)
class SimCLRConfig(Validated):
    """SimCLR, the contrastive baseline; it trains with ``byol.optim`` so both methods get the same budget."""

    temperature: float = _f(0.1, "NT-Xent temperature: cosine similarities are divided by it.", min=1e-3, max=10.0)


@dataclass(frozen=True)
class SupervisedConfig(Validated):
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-4, epochs=25),
        metadata={"help": "Supervised optimisation."},
    )
    linear_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-2, epochs=100, batch_size=1024),
        metadata={"help": "Linear-probe optimisation (on frozen features)."},
    )
    linear_tune_weight_decay: bool = _f(True, "Linear probe: train one head per weight decay in (0, 1e-4, 1e-3, "
                                              "1e-2, 3e-2, 1e-1) and keep the best on the validation split "
                                              "(off, or without a split: linear_optim.weight_decay).")
    crop_scale_min: float = _f(0.5, "Smallest crop area of the light supervised augmentation.", min=0.01, max=1.0)
    flip_p: float = _f(0.5, "Flip probability of the supervised augmentation.", min=0.0, max=1.0)


@dataclass(frozen=True)
class EvalConfig(Validated):
    knn_k: int = _f(20, "Neighbours used by the weighted kNN classifier.", min=1, max=1000)
    knn_temperature: float = _f(0.07, "Temperature of the kNN similarity weights.", min=1e-3, max=10.0)
    batch_size: int = _f(512, "Images per batch when embedding.", min=1, max=65536)


@dataclass(frozen=True)
class RuntimeConfig(Validated):
    device: str = _f("auto", "'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:1', 'mps'.")
    precision: str = _f("auto", "'auto' (bf16 autocast on CUDA and on CPUs with native bf16, else fp32), "
                                "'bf16' or 'fp32'.",
                        choices=("auto", "bf16", "fp32"))
    channels_last: bool = _f(True, "Use the channels_last memory format (faster convolutions on CUDA and CPU).")
    compile: bool = _f(False, "torch.compile the networks.")
    log_every: int = _f(10, "Read metrics from the device every N steps.", min=1)
    checkpoint_every_epochs: int = _f(1, "Save a checkpoint every N epochs.", min=1)
    num_threads: int | None = _f(None, "CPU threads for torch (None: torch's default).", min=1, max=MAX_THREADS)
    sync_batchnorm_backbone: bool = _f(False, "Under torchrun on GPUs, BatchNorm in the backbone too uses the "
                                              "statistics of the global batch (the heads always do); slower.")

    def _check(self) -> None:
        if not DEVICES.fullmatch(self.device):
            raise ConfigError(f"RuntimeConfig.device = {clipped(self.device)} is not a device; use 'auto', 'cpu', "
                              "'cuda', 'cuda:<n>' (the GPU numbered n) or 'mps'.")


@dataclass(frozen=True)
class ExperimentConfig(Validated):
    name: str = _f("run", "Name shown for the run.")
    seed: int = _f(0, "Random seed of training.", min=0, max=MAX_SEED)
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Data set and splits."})
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata={"help": "BYOL's two views."})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "Backbone, projector and predictor."})
    byol: BYOLConfig = field(default_factory=BYOLConfig, metadata={"help": "BYOL pretraining."})
    simclr: SimCLRConfig = field(default_factory=SimCLRConfig, metadata={"help": "SimCLR pretraining (baseline)."})
    supervised: SupervisedConfig = field(
        default_factory=SupervisedConfig,
        metadata={"help": "Supervised training and probes."},
    )
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Evaluation."})
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig, metadata={"help": "Device and precision."})

    def _check(self) -> None:
        # The labelled subset is part of the data, drawn before training: 'per seed' ties its seed to the run's.
        subset_seed = self.seed if self.data.labelled_subset == "per seed" else 0
        if self.data.subset_seed != subset_seed:
            object.__setattr__(self, "data", dataclasses.replace(self.data, subset_seed=subset_seed))


# --------------------------------------------------------------------------- helpers
def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-able data."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


# A config file is a few KB, four levels deep; far more is not a config (and deep enough JSON breaks the parser).
_parse_json = functools.partial(parse_json, max_bytes=MAX_CONFIG_BYTES, max_depth=MAX_NESTING, error=ConfigError)


def from_json(text: str, cls: type = ExperimentConfig) -> Any:
    return from_dict(cls, _parse_json(text, "config"))


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(to_json(cfg) + "\n")


def load_config(path: str | Path, cls: type = ExperimentConfig,
                on_defaults: Callable[[list[str]], None] | None = None) -> Any:
    """A config from a JSON file: a bare config, or a run's ``config.json`` (its ``config`` part).

    Fields the file does not set take their defaults; ``on_defaults`` is told which, so a caller
    can say so instead of filling them silently.
    """
    p = Path(path)
    what = f"config file {str(p)!r}"
    if not p.is_file():
        raise ConfigError(f"{what} {'is not a file' if p.exists() else 'does not exist'}.")
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:  # a file larger than a config may be is refused from its size, unread
            text = "" if size > MAX_CONFIG_BYTES else fh.read(MAX_CONFIG_BYTES + 1).decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} cannot be read as JSON text: {exc}") from exc
    data = _parse_json(text, what, size=size)
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and "kind" in data:
        data = data["config"]  # a run folder's record: kind, options and the config itself
    cfg = from_dict(cls, data)
    missing = missing_fields(cls, data)
    if missing and on_defaults is not None:
        on_defaults(missing)
    return cfg


def with_overrides(cfg: Any, overrides: dict[str, Any]) -> Any:
    """A copy of ``cfg`` with dotted keys replaced, e.g. ``{"byol.optim.lr": 3e-4}``.

    Values may be strings (from the command line); they are parsed as JSON when
    possible and then coerced to the field's type, so the range checks apply. The
    config is validated once, after every key is set, so rules that tie fields
    together (``data.name=folder`` needs ``data.folder``) hold in any order.
    """
    data = to_dict(cfg)
    for key, raw in overrides.items():
        node = data
        parts = key.split(".")
        path = []
        for part in parts[:-1]:
            path.append(part)
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown config key {key!r}: {'.'.join(path)!r} is not a section.")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"unknown config key {key!r}; known keys here: {sorted(node)}.")
        node[parts[-1]] = _parse_value(raw, key)
    try:
        return from_dict(type(cfg), data)
    except ConfigError as exc:
        culprit = next((k for k in overrides if re.search(rf"\.{re.escape(k.split('.')[-1])}\b", str(exc))), None)
        if culprit is None:
            raise
        raise ConfigError(f"--set {culprit}={overrides[culprit]}: {exc}") from exc


def _parse_value(raw: Any, key: str = "") -> Any:
    if not isinstance(raw, str):
        return raw
    if raw.lower() in ("none", "null"):
        return None
    if json_nesting(raw) > MAX_NESTING:
        raise ConfigError(f"--set {key}={clipped(raw, 20)}: the value is nested more than {MAX_NESTING} levels deep.")
    try:
        return json.loads(raw)
    except ValueError:  # plain text (or a number with more digits than Python converts): the field's type decides
        return raw


def parse_set_args(items: list[str]) -> dict[str, str]:
    """Turn ``["a.b=1", "c=x"]`` into a dict, with a clear error for a missing '='."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} needs the form key=value, e.g. byol.optim.lr=3e-4.")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out



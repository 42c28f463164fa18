"""Experiment configuration: small dataclasses validated at construction.

Every numeric field carries its allowed range in ``dataclasses.field`` metadata
(``min``, ``max``, ``choices``, ``help``, ``op``). The same schema drives
validation here, ``--set`` parsing in the CLI and the controls the dashboard
generates, so a range is written once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .text import clipped, json_nesting, parse_json


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


MAX_SEED = 2**32 - 1  # what every seeded generator takes (numpy's legacy seeding is the narrowest; torch's is 2**64)
MAX_THREADS = 1024  # far above this torch's CPU thread pools fail to start ("could not create a primitive")
DEVICES = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")  # what device.resolve_device and the training code support
MAX_CONFIG_BYTES, MAX_NESTING = 2**20, 16  # the largest and deepest JSON read as a config


def _f(default: Any, help: str, *, min: float | None = None, max: float | None = None,
       choices: tuple | None = None, op: str | None = None) -> Any:
    meta = {"help": help, "min": min, "max": max, "choices": choices, "op": op}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _check_field(owner: str, f: dataclasses.Field, value: Any) -> None:
    name = f"{owner}.{f.name}"
    meta = f.metadata
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} = {clipped(value)} is not allowed; choose one of {list(choices)}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{name} = nan is not a number; allowed range is [{lo}, {hi}].")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s, hi_s = ("-inf" if lo is None else lo), ("inf" if hi is None else hi)
        raise ConfigError(f"{name} = {clipped(value)} is out of range; allowed range is [{lo_s}, {hi_s}].")


@functools.cache  # resolving annotations compiles each string anew: once per class, not per instance
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class _Validated:
    """Mixin: range-check every field after construction, then run ``_check``."""

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            value = _coerce(f"{type(self).__name__}.{f.name}", hints[f.name], value)
            object.__setattr__(self, f.name, value)
            _check_field(type(self).__name__, f, value)
        self._check()

    def _check(self) -> None:  # cross-field rules, overridden where needed
        pass


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Turn JSON/CLI values into the annotated type, or raise a ConfigError naming the field."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(name, non_none[0], value)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, dict):
            return from_dict(hint, value, prefix=name)
        raise ConfigError(f"{name} must be an object with the fields of {hint.__name__}, got {clipped(value)}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name} must be true or false, got {clipped(value)}.")
    if hint is int:
        whole = int(value) if isinstance(value, float) and value.is_integer() else value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # too many digits is a ValueError too
                whole = int(value)
        if isinstance(whole, int) and not isinstance(whole, bool):
            return whole
        raise ConfigError(f"{name} must be a whole number, got {clipped(value)}.")
    if hint is float:
        if not isinstance(value, bool):
            with contextlib.suppress(ValueError, TypeError, OverflowError):  # e.g. None, "fast", 10**400
                return float(value)
        raise ConfigError(f"{name} must be a number, got {clipped(value)}.")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be text, got {clipped(value)}.")
    return value


# --------------------------------------------------------------------------- data
DATASETS = ("digits", "fashion-mnist", "cifar10", "stl10", "folder")


@dataclass(frozen=True)
class DataConfig(_Validated):
    name: str = _f("digits", "Data set to use.", choices=DATASETS)
    root: str = _f("data", "Where data sets are stored or downloaded to.")
    folder: str | None = _f(None, "Image folder for name='folder' (class subfolders optional).")
    folder_image_size: int = _f(96, "Folder images are centre-cropped square and resized to this side.",
                                min=8, max=1024)
    max_folder_images: int = _f(20_000, "Refuse image folders with more images than this (a wrong folder, "
                                        "such as a home directory, would take minutes and gigabytes).", min=1)
    download: bool = _f(True, "Download torchvision data sets when they are not on disk.")
    test_fraction: float = _f(0.2, "Held-out share for sets without a test split.", min=0.05, max=0.9)
    # 0 by default so configs saved before this field existed load as what they ran: no validation split.
    val_fraction: float = _f(0.0, "Share of each class of the training split held out for validation "
                                  "(checkpoint choice, curves during training); 0: none.", min=0.0, max=0.5)
    label_fraction: float = _f(1.0, "Share of training labels kept (stratified).", min=0.001, max=1.0)
    max_train_images: int | None = _f(None, "Cap on training images (None: all).", min=1)
    max_test_images: int | None = _f(None, "Cap on test images (None: all).", min=1)
    max_unlabeled_images: int | None = _f(None, "Cap on extra unlabeled images (STL10).", min=0)
    split_seed: int = _f(0, "Seed of the train/test split, validation split and label subset.", min=0, max=MAX_SEED)

    def _check(self) -> None:
        if self.name == "folder" and not self.folder:
            raise ConfigError("data.folder is empty; set data.folder=<path to an image folder> "
                              "when data.name is 'folder'.")


# --------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class ViewAugmentConfig(_Validated):
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
class AugmentConfig(_Validated):
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
class ModelConfig(_Validated):
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
class OptimConfig(_Validated):
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
class BYOLConfig(_Validated):
    tau_base: float = _f(0.99, "EMA decay of the target at the start; rises to 1 on a cosine schedule.",
                         min=0.0, max=1.0)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-4, epochs=50),
        metadata={"help": "BYOL pretraining optimisation."},
    )
    knn_every_epochs: int = _f(0, "Run a kNN check on the validation split every N epochs (0: never).", min=0)


@dataclass(frozen=True)
class SimCLRConfig(_Validated):
    """SimCLR, the contrastive baseline; it trains with ``byol.optim`` so both methods get the same budget."""

    temperature: float = _f(0.1, "NT-Xent temperature: cosine similarities are divided by it.", min=1e-3, max=10.0)


@dataclass(frozen=True)
class SupervisedConfig(_Validated):
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
class EvalConfig(_Validated):
    knn_k: int = _f(20, "Neighbours used by the weighted kNN classifier.", min=1, max=1000)
    knn_temperature: float = _f(0.07, "Temperature of the kNN similarity weights.", min=1e-3, max=10.0)
    batch_size: int = _f(512, "Images per batch when embedding.", min=1, max=65536)


@dataclass(frozen=True)
class RuntimeConfig(_Validated):
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
class ExperimentConfig(_Validated):
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


# --------------------------------------------------------------------------- helpers
def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-able data."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict[str, Any], prefix: str | None = None) -> Any:
    """Build ``cls`` from plain data, rejecting unknown keys by name."""
    prefix = prefix or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix} must be an object, got {clipped(data)}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{prefix} has no field {unknown[0]!r}; known fields: {sorted(names)}.")
    return cls(**data)


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


def missing_fields(cls: type, data: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields of ``cls`` that ``data`` does not set (they take their defaults)."""
    out: list[str] = []
    hints = _type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        if not isinstance(data, dict) or f.name not in data:
            out.append(name)
        elif dataclasses.is_dataclass(hints[f.name]):
            out.extend(missing_fields(hints[f.name], data[f.name], name + "."))
    return out


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


def field_schema(cls: type) -> list[dict[str, Any]]:
    """Name, type, default and range of each field: what a UI needs to draw a control."""
    hints = _type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append({"name": f.name, "type": hints[f.name], "default": default, **f.metadata})
    return rows

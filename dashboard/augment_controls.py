"""Augmentation controls generated from ``field_schema(ViewAugmentConfig)``.

Fields are grouped by their ``op`` metadata (crop, flip, jitter, grayscale, blur, solarize). Each op
gets an on/off toggle and its sliders, with the schema's range and help text; ``<name>_min`` /
``<name>_max`` pairs become one range slider. Turning an op off sets its probability (the
``*_p`` field) to 0; the crop, which has no probability, becomes the identity (whole image).

Widget values live in ``st.session_state`` under ``aug.<view>.<field>``; the resulting
``AugmentConfig`` goes into the Data page's choice (``state.set_augment_cfg``), which every page reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from byol_core.augment.ops import blur_kernel_size
from byol_core.config import AugmentConfig, DataConfig, ViewAugmentConfig
from byol_core.schema import field_schema

VIEWS = ("view1", "view2")
VIEW_TITLES = {"view1": "View 1", "view2": "View 2"}
OP_TITLES = {
    "crop": "Random resized crop",
    "flip": "Horizontal flip",
    "jitter": "Colour jitter",
    "grayscale": "Grayscale",
    "blur": "Gaussian blur",
    "solarize": "Solarize",
}
# What "off" means for an op without a probability: a crop of the whole image at its own shape.
IDENTITY = {"crop": {"crop_scale_min": 1.0, "crop_scale_max": 1.0, "crop_ratio_min": 1.0, "crop_ratio_max": 1.0}}
# Probability an op gets when switched on while its slider sits at 0 (e.g. solarize on view 1).
SWITCH_ON_P = 0.5


@dataclass(frozen=True)
class Control:
    """One slider: a single field, or a (min, max) pair shown as a range slider."""

    key: str          # suffix of the widget key: the field name, or the pair's common stem
    fields: tuple[str, ...]
    label: str
    help: str
    min: float
    max: float


@dataclass(frozen=True)
class OpGroup:
    op: str
    title: str
    controls: tuple[Control, ...]
    prob_field: str | None  # the field that gives the op's probability, if any


def _label(name: str) -> str:
    name = name.removesuffix("_p").replace("_", " ")
    return name[0].upper() + name[1:] if name else name


def op_groups() -> list[OpGroup]:
    """The schema's fields grouped by op, in the order the pipeline applies them."""
    rows = field_schema(ViewAugmentConfig)
    by_op: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_op.setdefault(row.get("op") or "other", []).append(row)
    groups = []
    for op, fields in by_op.items():
        names = [f["name"] for f in fields]
        controls: list[Control] = []
        done: set[str] = set()
        for f in fields:
            name = f["name"]
            if name in done:
                continue
            if name.endswith("_min") and name[:-4] + "_max" in names:
                stem = name[:-4]
                hi = next(g for g in fields if g["name"] == stem + "_max")
                controls.append(Control(stem, (name, hi["name"]), _label(stem) + " (min, max)",
                                        f"{f['help']} / {hi['help']}", float(f["min"]), float(hi["max"])))
                done.update({name, hi["name"]})
            else:
                label = "Probability" if name.endswith("_p") else _label(name)
                controls.append(Control(name, (name,), label, f["help"], float(f["min"]), float(f["max"])))
                done.add(name)
        prob = next((n for n in names if n.endswith("_p")), None)
        groups.append(OpGroup(op, OP_TITLES.get(op, _label(op)), tuple(controls), prob))
    return groups


def _key(view: str, suffix: str) -> str:
    return f"aug.{view}.{suffix}"


def toggle_key(view: str, op: str) -> str:
    return _key(view, f"{op}.on")


def widget_key(view: str, control: Control) -> str:
    return _key(view, control.key)


def _is_on(group: OpGroup, view_cfg: ViewAugmentConfig) -> bool:
    if group.prob_field is not None:
        return getattr(view_cfg, group.prob_field) > 0
    identity = IDENTITY.get(group.op)
    if identity is None:
        return True
    return any(getattr(view_cfg, k) != v for k, v in identity.items())


def _widget_values(cfg: AugmentConfig) -> dict[str, Any]:
    """Every widget key -> the value that shows ``cfg``."""
    values: dict[str, Any] = {"aug.image_size": cfg.image_size, "aug.backend": cfg.backend}
    defaults = ViewAugmentConfig()
    for view in VIEWS:
        view_cfg: ViewAugmentConfig = getattr(cfg, view)
        for group in op_groups():
            on = _is_on(group, view_cfg)
            values[toggle_key(view, group.op)] = on
            # A switched-off crop shows the default range, ready for when it is switched back on.
            source = defaults if not on and group.op in IDENTITY else view_cfg
            for c in group.controls:
                if len(c.fields) == 2:
                    values[widget_key(view, c)] = (float(getattr(source, c.fields[0])),
                                                   float(getattr(source, c.fields[1])))
                else:
                    values[widget_key(view, c)] = float(getattr(source, c.fields[0]))
    return values


def init_widgets(cfg: AugmentConfig) -> None:
    """Give every control its value from ``cfg`` unless the person already set it this visit."""
    for key, value in _widget_values(cfg).items():
        if key not in st.session_state:
            st.session_state[key] = value


def load_widgets(cfg: AugmentConfig) -> None:
    """Show ``cfg`` in every control (overwrites; call from a callback or before the widgets draw)."""
    for key, value in _widget_values(cfg).items():
        st.session_state[key] = value


def forget_view(view: str) -> None:
    """Drop ``view``'s control values, so that when next drawn its controls start from the Data page's choice,
    which holds them meanwhile (:func:`init_widgets`)."""
    for key in [k for k in st.session_state if str(k).startswith(_key(view, ""))]:
        del st.session_state[key]


def _switched(view: str, group: OpGroup) -> None:
    """Callback of an op's toggle: switching on an op whose probability is 0 gives it a usable one."""
    if group.prob_field is None or not st.session_state.get(toggle_key(view, group.op)):
        return
    key = _key(view, group.prob_field)
    if float(st.session_state.get(key, 0.0)) <= 0.0:
        st.session_state[key] = SWITCH_ON_P


def view_controls(view: str, image_size: int) -> ViewAugmentConfig:
    """Draw one view's controls and return the config they describe; ``image_size`` sizes the blur shown."""
    values: dict[str, Any] = {}
    groups = op_groups()
    cols = st.columns(2)
    for i, group in enumerate(groups):
        with cols[i % 2].container(border=True):
            on = st.toggle(group.title, key=toggle_key(view, group.op), on_change=_switched, args=(view, group),
                           help=_toggle_help(group))
            for c in group.controls:
                value = st.slider(c.label, min_value=c.min, max_value=c.max, step=0.01, format="%.2f",
                                  key=widget_key(view, c), help=c.help, disabled=not on)
                if len(c.fields) == 2:
                    values[c.fields[0]], values[c.fields[1]] = float(value[0]), float(value[1])
                else:
                    values[c.fields[0]] = float(value)
            if group.op == "blur" and on:
                st.caption(blur_summary(values["blur_sigma_min"], values["blur_sigma_max"], image_size))
            if not on:
                if group.prob_field is not None:
                    values[group.prob_field] = 0.0
                values.update(IDENTITY.get(group.op, {}))
    return ViewAugmentConfig(**values)


def blur_summary(sigma_min: float, sigma_max: float, image_size: int) -> str:
    """What the blur sliders mean at this view size: sigma in pixels and the kernel's side."""
    k = blur_kernel_size(image_size, sigma_max)
    # The kernel reaches +-3 sigma unless the image side caps it; then large sigmas blur less than they say.
    capped = " (capped by the image side)" if k // 2 < 3 * sigma_max else ""
    return f"At {image_size} px: sigma {sigma_min:.2f}–{sigma_max:.2f} px, kernel {k}×{k} px{capped}."


def _how_often(p: float, verb: str) -> str:
    if p >= 1.0:
        return f"always {verb}"
    if p <= 0.0:
        return f"never {verb}"
    return f"{verb} {100 * p:.3g}% of the time"


def view_summary(view: str, view_cfg: ViewAugmentConfig) -> str:
    """One line on how often this view is blurred and solarized, from its current values."""
    blur, solarize = _how_often(view_cfg.blur_p, "blurred"), _how_often(view_cfg.solarize_p, "solarized")
    return f"{VIEW_TITLES[view]} is {blur} and {solarize}."


def _toggle_help(group: OpGroup) -> str:
    if group.prob_field is not None:
        return f"Off sets {group.prob_field} to 0: the {group.title.lower()} is never applied."
    return "Off uses the whole image at its own shape (no cropping)."


def _non_default_args(cfg: Any, always: tuple[str, ...] = ()) -> str:
    """``cfg``'s fields that differ from its class's defaults (and those named in ``always``), as keyword
    arguments."""
    defaults = type(cfg)()
    return ", ".join(f"{f.name}={getattr(cfg, f.name)!r}" for f in dataclasses.fields(cfg)
                     if f.name in always or getattr(cfg, f.name) != getattr(defaults, f.name))


def python_snippet(cfg: AugmentConfig, data: DataConfig, indices: Sequence[int], seed: int = 0) -> str:
    """Python that rebuilds what the preview shows: the data set, the same training images (``indices``), the
    same views (``seed``), with byol_core (non-default fields only)."""
    return "\n".join([
        "from byol_core.augment.views import BYOLAugment, preview",
        "from byol_core.config import AugmentConfig, DataConfig, ViewAugmentConfig",
        "from byol_core.data import load_data",
        "",
        f"splits = load_data(DataConfig({_non_default_args(data, always=('name',))}))",
        "cfg = AugmentConfig(",
        f"    image_size={cfg.image_size!r}, backend={cfg.backend!r},",
        f"    view1=ViewAugmentConfig({_non_default_args(cfg.view1)}),",
        f"    view2=ViewAugmentConfig({_non_default_args(cfg.view2)}),",
        ")",
        f"images = splits.train.images[{list(indices)!r}]  # the training images shown here",
        "augment = BYOLAugment(cfg, splits.mean, splits.std)  # what training uses",
        f"view1, view2 = augment(images)  # normalised ({len(indices)}, 3, {cfg.image_size}, {cfg.image_size})",
        f"originals, v1, v2 = preview(images, cfg, seed={seed})  # 0..1, the views shown here",
    ])

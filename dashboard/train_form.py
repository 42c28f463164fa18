"""The Train page's job form: which run a job reuses, its settings, and what the planned job changes before Start.

The page collects the choices and plans the job once per rerun (:func:`byol_core.lab.plans.plan`);
these panels draw the widgets and read the planned job, they never plan one themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from byol_core.config import LABELLED_SUBSETS, ExperimentConfig
from byol_core.lab import guards
from byol_core.lab.choices import DataChoice
from byol_core.lab.jobs import JobManager
from byol_core.lab.plans import JobSpec
from byol_core.lab.stages import Stage
from byol_core.lab.summary import RunSummary
from byol_core.text import markdown_text
from dashboard import state

LR_CHOICES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BATCH_CHOICES = [16, 32, 64, 128, 256, 512, 1024]
LABEL_FRACTIONS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
NO_REFERENCE = "— the preset and the Data page's choices —"


def _with_choice(options: list, value: Any) -> list:
    return sorted({*options, value})


def pick_reference(stage: Stage, column: Any, summaries: Sequence[RunSummary], dataset: str) -> RunSummary | None:
    """The run whose encoder (fine-tune, probe) or network and data (a matched baseline) the job reuses.

    ``column``: where its select goes; ``summaries``: every run, of which the finished pretrainings (those on
    ``dataset`` first) are offered.
    """
    pretrained = [s for s in summaries if s.pretrained and not s.archived]
    candidates = sorted(pretrained, key=lambda s: s.dataset != dataset)
    by_id = {s.id: s for s in candidates}
    if stage.source == "required":
        if not candidates:
            st.info("No finished pretraining run yet: start **BYOL pretraining** (or SimCLR) first, then come "
                    "back to fine-tune or probe its encoder.", icon=":material/info:")
            return None
        ref_id = column.selectbox("Pretrained run to start from", list(by_id), format_func=lambda r: by_id[r].short(),
                                  key="train.from_run",
                                  help="Its network, data set and augmentation are reused, so the numbers compare.")
        return by_id[ref_id]
    if stage.source == "none" and not stage.pretraining and candidates:
        # Never a default: the job trains on the Data page's choice unless the person picks a run here.
        ref_id = column.selectbox("Same network and data as", [NO_REFERENCE, *by_id], index=0, key="train.match_run",
                                  format_func=lambda r: r if r == NO_REFERENCE else by_id[r].short(),
                                  help="A fair baseline uses the pretrained run's network, data and test split: "
                                       "pick that run here.")
        return by_id.get(ref_id)
    return None


def views_caption(choice: DataChoice, preset: str) -> str:
    """Which data and views a job from the Data page's choice trains on, in words."""
    data = f"Data: **{markdown_text(choice.data.name)}** (the Data page's choice, {choice.image_size} px views)"
    edits = choice.edits_text()
    changed = (f", with the {len(edits)} field{'s' * (len(edits) != 1)} you changed on the Data page "
               f"({', '.join(f'`{e}`' for e in edits)})" if edits else "; you changed none on the Data page")
    shown = "" if choice.base_preset == preset else (f" The Data page previews `{choice.base_preset}`'s views; "
                                                     f"this job keeps `{preset}`'s.")
    return f"{data}. Views: the `{preset}` preset's{changed}.{shown}"


def settings(stage: Stage, start: ExperimentConfig, scope: str, caps: bool) -> dict:
    """The form's numbers as plan overrides, each widget starting from ``start`` (keys scoped by ``scope``).

    ``start`` is the reference run's config or the preset: plan keeps their optimiser, seed and data
    design (caps, label share), so the widgets start where the job would without them.
    """
    optim, section = stage.optim(start), stage.optim_section
    c1, c2, c3, c4 = st.columns(4)
    overrides: dict = {
        f"{section}.epochs": c1.number_input("Epochs", min_value=0.01, max_value=10000.0, value=float(optim.epochs),
                                             step=1.0, format="%g", key=f"train.epochs.{scope}",
                                             help="Passes over the training images."),
        f"{section}.lr": c2.select_slider("Learning rate", _with_choice(LR_CHOICES, optim.lr), value=optim.lr,
                                          format_func=lambda v: f"{v:g}", key=f"train.lr.{scope}"),
        f"{section}.batch_size": c3.selectbox(
            "Batch size", _with_choice(BATCH_CHOICES, optim.batch_size),
            index=_with_choice(BATCH_CHOICES, optim.batch_size).index(optim.batch_size), key=f"train.batch.{scope}"),
        "data.label_fraction": c4.select_slider(
            "Labels kept", _with_choice(LABEL_FRACTIONS, start.data.label_fraction), value=start.data.label_fraction,
            format_func=lambda v: f"{100 * v:g}%", key=f"train.labels.{scope}",
            help="Share of training labels the supervised stages and kNN may use. BYOL shines when labels are scarce."),
    }
    with st.expander("More settings"):
        c1, c2, c3 = st.columns(3)
        if caps:
            cap = c1.number_input("Training images (0: all)", min_value=0, step=256,
                                  value=int(start.data.max_train_images or 0), key=f"train.cap.{scope}")
            test_cap = c2.number_input("Test images (0: all)", min_value=0, step=128,
                                       value=int(start.data.max_test_images or 0), key=f"train.testcap.{scope}")
            overrides["data.max_train_images"] = int(cap) or None
            overrides["data.max_test_images"] = int(test_cap) or None
        if stage.needs_labels:
            overrides[f"{section}.min_steps"] = c3.number_input(
                "At least this many steps", min_value=0, step=50, value=int(optim.min_steps),
                key=f"train.minsteps.{scope}",
                help="With few labels an epoch is only a few steps; a floor lets the network actually train.")
        if stage.pretraining:
            overrides["byol.knn_every_epochs"] = c3.number_input(
                "kNN check every N epochs", min_value=0, step=1, value=int(start.byol.knn_every_epochs),
                key=f"train.knn.{scope}", help="Scores the encoder on the validation split during training (0: never; "
                                               "the test set is scored at the end).")
        overrides["seed"] = c3.number_input("Seed", min_value=0, step=1, value=int(start.seed),
                                            key=f"train.seed.{scope}")
        if stage.needs_labels or stage.pretraining:  # the subset a run is scored with (kNN votes with it too)
            overrides["data.labelled_subset"] = c1.radio(
                "Labelled images", LABELLED_SUBSETS, index=LABELLED_SUBSETS.index(start.data.labelled_subset),
                format_func=lambda v: {"per seed": "drawn anew with each seed", "fixed": "the same for every seed"}[v],
                key=f"train.subset.{scope}", help="Drawn per seed (the default), an interval over seeds also covers "
                "which images happened to be labelled; the same for every seed isolates the training randomness.")
    return overrides


def show_guards(spec: JobSpec | None) -> bool:
    """The job's guard rails, checked on the data it will use (blocks as errors, warnings); True if one blocks."""
    blocked = False
    for guard in guards.check_spec(spec) if spec is not None else []:
        blocked |= guard.level == "block"
        show = st.error if guard.level == "block" else st.warning
        show(guard.message, icon=":material/block:" if guard.level == "block" else ":material/warning:")
    return blocked


def start_button(manager: JobManager, spec: JobSpec | None, preset: str) -> None:
    """What the planned job changes, its guard rails (byol_core.lab.guards), and Start; None: nothing to start."""
    if spec is not None and (spec.changes or spec.notes):
        count = len(spec.changes)
        with st.expander(f"What this job changes from the {preset} preset ({count} field{'s' * (count != 1)})"):
            st.markdown("\n".join(f"- {c.markdown()}" for c in spec.changes) or "Nothing: the preset as it is.")
            if spec.notes:  # what the plan kept or how it will run: not changes, so not counted
                st.caption("  \n".join(markdown_text(n) for n in spec.notes))
    blocked = show_guards(spec)
    duplicate = spec is not None and manager.find_active(spec) is not None
    start = st.button("Start", type="primary", icon=":material/play_arrow:", key="train.start",
                      disabled=spec is None or duplicate or blocked,
                      help="This exact job is already running." if duplicate else None)
    if duplicate:
        st.caption("This exact job is already queued or running (a second click would not start it again).")
    if start and spec is not None:
        with state.user_errors("Could not start: "):
            job = manager.submit(spec)
            st.toast(f"Started {job.label} ({job.id}).", icon=":material/play_arrow:")
            st.rerun()

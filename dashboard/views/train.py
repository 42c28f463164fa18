"""Train: start BYOL and supervised runs as background jobs, watch them learn, stop and resume them.

The page only collects choices; :func:`byol_core.lab.plans.plan` turns them into the job (and says
what it changed), and the job manager refuses duplicates.
"""

from __future__ import annotations

import os

import streamlit as st

from byol_core.lab import guards
from byol_core.lab.plans import plan
from byol_core.lab.stages import Stage, get_stage, stages
from byol_core.lab.summary import RunSummary, list_summaries
from byol_core.presets import PRESETS, get_preset
from dashboard import error_analysis, job_cards, run_details, state, tables

RECENT_JOBS_SHOWN = 4
LR_CHOICES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BATCH_CHOICES = [16, 32, 64, 128, 256, 512, 1024]
LABEL_FRACTIONS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
NO_REFERENCE = "— the preset and the Data page's choices —"
# The preset follows the data set (one tuned for it, else the paper's); BYOL_DEFAULT_PRESET picks
# one for every data set (tests use the seconds-long "tiny").
FALLBACK_PRESET = "byol-paper"

manager = state.get_manager()
store = manager.store
data_cfg = state.get_data_cfg()
default_preset = os.environ.get("BYOL_DEFAULT_PRESET") or state.TUNED_PRESET.get(data_cfg.name, FALLBACK_PRESET)
if st.session_state.get("train.preset_for") != data_cfg.name:  # a new data set: start from its own preset
    st.session_state.pop("train.preset", None)
    st.session_state["train.preset_for"] = data_cfg.name
summaries = list_summaries(store)
trainable = [s.name for s in stages() if s.optim_section]

st.title("Train")
st.markdown(
    "Start **BYOL pretraining** (learns from the images alone) and a **supervised baseline** (learns from the "
    "labels alone), then use the BYOL encoder with the same few labels: **fine-tune** it or train a "
    "**linear probe** on top. Jobs run in the background; you can leave this page and come back."
)


def _with_choice(options: list, value) -> list:
    return sorted({*options, value})


def _pick_reference(stage: Stage, column) -> RunSummary | None:
    """The run whose encoder (fine-tune, probe) or network and data (a matched baseline) the job reuses."""
    pretrained = [s for s in summaries if s.pretrained and not s.archived]
    candidates = sorted(pretrained, key=lambda s: s.dataset != data_cfg.name)
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
        ref_id = column.selectbox("Same network and data as", [NO_REFERENCE, *by_id], index=1, key="train.match_run",
                                  format_func=lambda r: r if r == NO_REFERENCE else by_id[r].short(),
                                  help="A fair baseline uses the pretrained run's network, data and test split.")
        return by_id.get(ref_id)
    return None


# --------------------------------------------------------------------------- the form
with st.container(border=True):
    st.subheader("Start a job")
    c1, c2 = st.columns([3, 2])
    stage = get_stage(c1.radio("What to train", trainable, format_func=lambda n: get_stage(n).title,
                               key="train.kind"))
    preset = c2.selectbox("Preset (starting point)", list(PRESETS),
                          index=list(PRESETS).index(default_preset) if default_preset in PRESETS else 0,
                          key="train.preset",
                          help="Starts from the preset tuned for the Data page's data set. digits-quick: the "
                               "built-in digits, ~2 minutes; tiny: seconds-long smoke runs; cpu-quick: ~5 minutes on "
                               "Fashion-MNIST; "
                               "byol-paper / seed-stl10: the paper's ResNet18 settings (GPU).")
    reference = _pick_reference(stage, c2)
    needs_run = stage.source == "required" and reference is None
    own = False
    if reference is None:
        own = st.toggle(f"Use the preset's own data set ({get_preset(preset).data.name}) and augmentation instead "
                        "of the Data page's", key="train.preset_data",
                        help="Presets such as cpu-quick come with a data set and views tuned for them.")
    choices = {"source_config": reference.config if reference else None,
               "source_run": reference.id if reference and stage.source != "none" else None,
               "data": None if own or reference else data_cfg,
               "augment": None if own or reference else state.get_augment_cfg()}
    base = plan(stage.name, get_preset(preset), **choices).config if not needs_run else get_preset(preset)
    if reference is not None:
        st.caption(f"Network, data (**{base.data.name}**) and views ({base.augment.image_size} px) "
                   f"of run `{reference.id}`.")
    else:
        st.caption(f"Data: **{base.data.name}** with the {'preset' if own else 'Data page'}'s augmentation "
                   f"({base.augment.image_size} px views).")
    optim = stage.optim(base)
    section = stage.optim_section
    # Widgets get fresh defaults when these change.
    scope = f"{stage.name}.{preset}.{reference.id if reference else ''}{'.own' if own else ''}"

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
            "Labels kept", _with_choice(LABEL_FRACTIONS, base.data.label_fraction), value=base.data.label_fraction,
            format_func=lambda v: f"{100 * v:g}%", key=f"train.labels.{scope}",
            help="Share of training labels the supervised stages and kNN may use. BYOL shines when labels are scarce."),
    }
    with st.expander("More settings"):
        c1, c2, c3 = st.columns(3)
        if reference is None:
            cap = c1.number_input("Training images (0: all)", min_value=0, step=256,
                                  value=int(base.data.max_train_images or 0), key=f"train.cap.{scope}")
            test_cap = c2.number_input("Test images (0: all)", min_value=0, step=128,
                                       value=int(base.data.max_test_images or 0), key=f"train.testcap.{scope}")
            overrides["data.max_train_images"] = int(cap) or None
            overrides["data.max_test_images"] = int(test_cap) or None
        if stage.needs_labels:
            overrides[f"{section}.min_steps"] = c3.number_input(
                "At least this many steps", min_value=0, step=50, value=int(optim.min_steps),
                key=f"train.minsteps.{scope}",
                help="With few labels an epoch is only a few steps; a floor lets the network actually train.")
        if stage.pretraining:
            overrides["byol.knn_every_epochs"] = c3.number_input(
                "kNN check every N epochs", min_value=0, step=1, value=int(base.byol.knn_every_epochs),
                key=f"train.knn.{scope}", help="Scores the encoder on the validation split during training (0: never; the test set is scored at the end).")
        overrides["seed"] = c3.number_input("Seed", min_value=0, step=1, value=int(base.seed), key=f"train.seed.{scope}")

    spec = None
    if not needs_run:
        with state.user_errors("Settings: "):
            job = {"name": f"{stage.name}-{base.data.name}", "label": stage.short_title}
            spec = plan(stage.name, get_preset(preset), **choices, overrides=overrides, **job)
            if num_images := guards.training_images(spec):  # so the changes say how epochs turn into steps
                spec = plan(stage.name, get_preset(preset), **choices, overrides=overrides, **job,
                            num_images=num_images)
    if spec is not None and (spec.changes or spec.notes):
        with st.expander(f"What this job changes from the {preset} preset ({len(spec.changes)})"):
            st.markdown("\n".join([f"- {c.markdown()}" for c in spec.changes] + [f"- {n}" for n in spec.notes]))
    # ---- guard rails (byol_core.lab.guards): a job that cannot work on this data is blocked, a misleading one warned
    blocked = False
    for guard in guards.check_spec(spec) if spec is not None else []:
        blocked |= guard.level == "block"
        show = st.error if guard.level == "block" else st.warning
        show(guard.message, icon=":material/block:" if guard.level == "block" else ":material/warning:")
    # ---- end of guard rails
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

# --------------------------------------------------------------------------- live jobs
st.subheader("Jobs")
if not manager.jobs():
    st.caption("No job started from this dashboard yet. Earlier runs are listed below.")
job_cards.live_jobs(manager, RECENT_JOBS_SHOWN)

# --------------------------------------------------------------------------- past runs
st.subheader("All runs")
if not summaries:
    st.caption(f"No runs in `{store.root}` yet.")
    st.stop()
show_archived = st.toggle("Show archived runs", key="train.show_archived")
listed = [s for s in summaries if show_archived or not s.archived]
st.dataframe(tables.runs_table(listed), hide_index=True, key="train.runs", column_config={
    "accuracy": st.column_config.NumberColumn(format="percent"),
    "labels kept": st.column_config.NumberColumn(format="percent"),
})
live_ids = {j.id for j in manager.jobs() if j.active}
resumable = {s.id: s for s in summaries if s.resumable and s.id not in live_ids}
c1, c2 = st.columns(2)
with c1:
    if resumable:
        rid = st.selectbox("Resume a stopped or interrupted run", list(resumable), key="train.resume_pick",
                           format_func=lambda r: f"{r} ({resumable[r].state})")
        if st.button("Resume", key="train.resume", icon=":material/play_arrow:"):
            with state.user_errors("Could not resume: "):
                manager.resume(rid)
                st.rerun()
    else:
        st.caption("Runs that were stopped, or cut off by a restart, can be resumed here.")
with c2:
    picked = st.session_state.get("train.show_run")  # an archived run stays pickable while it is shown
    names = {s.id: s.display_name for s in summaries}
    shown = st.selectbox("Charts of a run", [s.id for s in summaries if s in listed or s.id == picked],
                         key="train.show_run", index=None, placeholder="Pick a run",
                         format_func=lambda r: f"{names[r]} · {r}" if names.get(r) else r)
if shown:
    summary = next(s for s in summaries if s.id == shown)
    run_details.show(store, summary, summaries)
    if summary.damaged or summary.error:
        st.error(summary.damaged or summary.error, icon=":material/error:")
    if summary.stage is None or not job_cards.draw_training_charts(store.get(shown), summary.stage,
                                                                    key="train.past_chart"):
        st.caption("This run logged no training curves.")
    if summary.usable_encoder:
        job_cards.encoder_download(store, summary)
        if summary.state == "finished" and st.toggle("Where it fails: confusion matrix and misclassified images",
                                                     key=f"train.errors.{shown}"):
            error_analysis.show(store, summary)

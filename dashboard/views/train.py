"""Train: start BYOL and supervised runs as background jobs, watch them learn, stop and resume them.

The page only collects choices; :func:`byol_core.lab.plans.plan` turns them into the job (and says
what it changed), and the job manager refuses duplicates.
"""

from __future__ import annotations

import streamlit as st

from byol_core.lab import guards
from byol_core.lab.plans import plan, with_steps_note
from byol_core.lab.stages import get_stage, stages
from byol_core.presets import PRESETS, get_preset, preset_for
from dashboard import error_analysis, job_cards, run_details, run_list, state, tables, train_form

RECENT_JOBS_SHOWN = 4
# The newest runs are a static table; all of them, sortable, are a data frame drawn only while its expander is open.
# Without the data frame a warm reload of this page took 0.81 s instead of 1.10 s on 2 cores (benchmarks/page_ab.py;
# benchmarks/element_costs.py has what each kind of element costs).
RUNS_LISTED = 8
ALL_RUNS_OPEN = "train.all_runs_open"

manager = state.get_manager()
store = manager.store
data_cfg = state.get_data_cfg()
default_preset = state.start_preset("train.preset", data_cfg.name)
summaries = run_list.list_summaries(store)
trainable = [s.name for s in stages() if s.optim_section]

st.title("Train")
st.markdown(
    "Start **BYOL pretraining** (learns from the images alone) and a **supervised baseline** (learns from the "
    "labels alone), then use the BYOL encoder with the same few labels: **fine-tune** it or train a "
    "**linear probe** on top. Jobs run in the background; you can leave this page and come back."
)

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
    reference = train_form.pick_reference(stage, c2, summaries, data_cfg.name)
    needs_run = stage.source == "required" and reference is None
    own = False
    # The folder preset's data set is a stand-in (the Data page supplies the folder): it has none of its own to offer.
    if reference is None and preset != preset_for("folder"):
        own = st.toggle(f"Use the preset's own data set ({get_preset(preset).data.name}) and augmentation instead "
                        "of the Data page's", key="train.preset_data",
                        help="Presets such as cpu-quick come with a data set and views tuned for them.")
    choice = state.get_choice()
    page_data = reference is None and not own and not needs_run  # the Data page's data set and view changes
    choices = {"source_config": reference.config if reference else None,
               "source_run": reference.id if reference and stage.source != "none" else None,
               "data": data_cfg if page_data else None,
               "views": choice.view_overrides() if page_data else None}
    start_cfg = reference.config if reference is not None else get_preset(preset)  # before the form's settings
    if reference is not None:
        st.caption(f"Network, data (**{reference.config.data.name}**) and views "
                   f"({reference.config.augment.image_size} px) of run `{reference.id}`, as you chose above.")
    elif page_data:
        st.caption(train_form.views_caption(choice, preset))
    elif own:
        st.caption(f"Data: **{start_cfg.data.name}** with the {preset} preset's own views "
                   f"({start_cfg.augment.image_size} px).")
    # Widgets get fresh defaults when these change.
    scope = f"{stage.name}.{preset}.{reference.id if reference else ''}{'.own' if own else ''}"
    overrides = train_form.settings(stage, start_cfg, scope, caps=reference is None)
    spec = None  # planned once per rerun, from every choice above
    if not needs_run:
        with state.user_errors("Settings: "):
            spec = plan(stage.name, get_preset(preset), **choices, overrides=overrides,
                        name=f"{stage.name}-{(data_cfg if page_data else start_cfg.data).name}", label=stage.short_title)
            spec = with_steps_note(spec, guards.training_images(spec))  # how its epochs turn into steps
    train_form.start_button(manager, spec, preset)

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
runs_rows = tables.runs_table(listed)
if runs_rows:
    st.table(tables.table_cells(runs_rows[:RUNS_LISTED], tables.RUNS_PERCENT), hide_index=True)
else:
    st.caption("Every run is archived: switch on \"Show archived runs\" to list them.")
if len(runs_rows) > RUNS_LISTED:
    st.caption(f"The {RUNS_LISTED} newest of {len(runs_rows)} runs.")
    # A fixed label: Streamlit closes an expander whose label changes (a count in it would, as jobs finish).
    every = st.expander("Every run, to sort and search", key=ALL_RUNS_OPEN, on_change="rerun",
                        icon=":material/table_rows:")
    if every.open:
        with every:
            st.dataframe(runs_rows, hide_index=True, key="train.runs",
                         column_config=tables.runs_table_columns(runs_rows))
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

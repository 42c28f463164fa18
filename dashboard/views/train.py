"""Train: start BYOL and supervised runs as background jobs, watch them learn, stop and resume them."""

from __future__ import annotations

import dataclasses
import os

import streamlit as st

from byol_core.config import ExperimentConfig, to_json, with_overrides
from byol_core.presets import PRESETS, get_preset
from byol_core.runs import Run
from dashboard import charts, runinfo, state

# While a job runs its progress line refreshes every PROGRESS_SECONDS and its charts every
# CHART_SECONDS. Each refresh costs the server and the browser CPU that training would otherwise
# get (a chart redraw ~0.3 s of the browser's CPU, a progress line ~0.14 s); see
# benchmarks/dashboard_overhead.py.
PROGRESS_SECONDS = 5.0
CHART_SECONDS = 10.0
RECENT_JOBS_SHOWN = 4
LR_CHOICES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BATCH_CHOICES = [16, 32, 64, 128, 256, 512, 1024]
LABEL_FRACTIONS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
NO_REFERENCE = "— the preset and the Data page's choices —"

manager = state.get_manager()
store = manager.store
data_cfg = state.get_data_cfg()
aug_cfg = state.get_augment_cfg()
infos = runinfo.list_runs(store)

st.title("Train")
st.markdown(
    "Start **BYOL pretraining** (learns from the images alone) and a **supervised baseline** (learns from the "
    "labels alone), then use the BYOL encoder with the same few labels: **fine-tune** it or train a "
    "**linear probe** on top. Jobs run in the background; you can leave this page and come back."
)


def _optim_section(kind: str) -> str:
    return {"byol": "byol.optim", "linear": "supervised.linear_optim"}.get(kind, "supervised.optim")


def _optim(cfg: ExperimentConfig, kind: str):
    section = _optim_section(kind)
    obj = cfg
    for part in section.split("."):
        obj = getattr(obj, part)
    return obj


def _with_choice(options: list, value) -> list:
    return sorted({*options, value})


# --------------------------------------------------------------------------- the form
with st.container(border=True):
    st.subheader("Start a job")
    kinds = list(runinfo.JOB_TITLES)
    c1, c2 = st.columns([3, 2])
    kind = c1.radio("What to train", kinds, format_func=runinfo.JOB_TITLES.get, key="train.kind")
    preset = c2.selectbox("Preset (starting point)", list(PRESETS), index=list(PRESETS).index("digits-quick"),
                          key="train.preset",
                          help="digits-quick: BYOL beats the supervised baseline on the built-in digits in under a "
                               "minute; tiny: seconds-long smoke runs; cpu-quick: ~5 minutes on Fashion-MNIST; "
                               "byol-paper / seed-stl10: the paper's ResNet18 settings (GPU).")
    same_data = [i for i in runinfo.byol_runs(infos) if i.dataset == data_cfg.name]
    candidates = same_data + [i for i in runinfo.byol_runs(infos) if i.dataset != data_cfg.name]
    by_id = {i.id: i for i in candidates}
    reference: runinfo.RunInfo | None = None
    if kind in ("finetune", "linear"):
        if not candidates:
            st.info("No finished BYOL run yet: start **BYOL pretraining** first, then come back to "
                    "fine-tune or probe its encoder.", icon=":material/info:")
        else:
            ref_id = c2.selectbox("BYOL run to start from", list(by_id), format_func=lambda r: by_id[r].short(),
                                  key="train.from_run",
                                  help="Its network, data set and augmentation are reused, so the numbers compare.")
            reference = by_id[ref_id]
    elif kind == "scratch" and candidates:
        options = [NO_REFERENCE, *by_id]
        ref_id = c2.selectbox("Same network and data as", options, index=1, key="train.match_run",
                              format_func=lambda r: r if r == NO_REFERENCE else by_id[r].short(),
                              help="A fair baseline uses the BYOL run's network, data and test split.")
        reference = by_id.get(ref_id)

    base = reference.cfg if reference is not None else get_preset(preset)
    own = False
    if reference is None:
        preset_data = base.data
        own = st.toggle(f"Use the preset's own data set ({preset_data.name}) and augmentation instead of the "
                        "Data page's", key="train.preset_data",
                        help="Presets such as cpu-quick come with a data set and views tuned for them.")
        if own:
            st.caption(f"Data: **{preset_data.name}** with the {preset} preset's augmentation "
                       f"({base.augment.image_size} px views).")
        else:
            base = dataclasses.replace(base, data=dataclasses.replace(
                data_cfg, max_train_images=preset_data.max_train_images,
                max_test_images=preset_data.max_test_images, label_fraction=preset_data.label_fraction),
                augment=aug_cfg)
            st.caption(f"Data: **{data_cfg.name}** with the augmentation chosen on the Data page "
                       f"({aug_cfg.image_size} px views).")
    else:
        st.caption(f"Network, data (**{base.data.name}**) and views ({base.augment.image_size} px) "
                   f"of run `{reference.id}`.")
    optim = _optim(base, kind)
    # Widgets get fresh defaults when these change.
    scope = f"{kind}.{preset}.{reference.id if reference else ''}{'.own' if own else ''}"

    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", min_value=0.01, max_value=10000.0, value=float(optim.epochs), step=1.0,
                             format="%g", key=f"train.epochs.{scope}", help="Passes over the training images.")
    lr = c2.select_slider("Learning rate", _with_choice(LR_CHOICES, optim.lr), value=optim.lr,
                          format_func=lambda v: f"{v:g}", key=f"train.lr.{scope}")
    batch = c3.selectbox("Batch size", _with_choice(BATCH_CHOICES, optim.batch_size),
                         index=_with_choice(BATCH_CHOICES, optim.batch_size).index(optim.batch_size),
                         key=f"train.batch.{scope}")
    fraction = c4.select_slider("Labels kept", _with_choice(LABEL_FRACTIONS, base.data.label_fraction),
                                value=base.data.label_fraction, format_func=lambda v: f"{100 * v:g}%",
                                key=f"train.labels.{scope}",
                                help="Share of training labels the supervised stages and kNN may use. BYOL "
                                     "shines when labels are scarce.")
    overrides: dict = {f"{_optim_section(kind)}.epochs": epochs, f"{_optim_section(kind)}.lr": lr,
                       f"{_optim_section(kind)}.batch_size": batch, "data.label_fraction": fraction}
    with st.expander("More settings"):
        c1, c2, c3 = st.columns(3)
        if reference is None:
            cap = c1.number_input("Training images (0: all)", min_value=0, step=256,
                                  value=int(base.data.max_train_images or 0), key=f"train.cap.{scope}")
            test_cap = c2.number_input("Test images (0: all)", min_value=0, step=128,
                                       value=int(base.data.max_test_images or 0), key=f"train.testcap.{scope}")
            overrides["data.max_train_images"] = int(cap) or None
            overrides["data.max_test_images"] = int(test_cap) or None
        if kind in ("scratch", "finetune"):
            overrides["supervised.optim.min_steps"] = c3.number_input(
                "At least this many steps", min_value=0, step=50, value=int(base.supervised.optim.min_steps),
                key=f"train.minsteps.{scope}",
                help="With few labels an epoch is only a few steps; a floor lets the network actually train.")
        if kind == "byol":
            overrides["byol.knn_every_epochs"] = c3.number_input(
                "kNN check every N epochs", min_value=0, step=1, value=int(base.byol.knn_every_epochs),
                key=f"train.knn.{scope}", help="Scores the encoder on the test set during training (0: only at the end).")
        overrides["seed"] = c3.number_input("Seed", min_value=0, step=1, value=int(base.seed), key=f"train.seed.{scope}")

    cfg: ExperimentConfig | None = None
    with state.user_errors("Settings: "):
        name = f"{kind}-{base.data.name}"
        cfg = with_overrides(dataclasses.replace(base, name=name), overrides)

    from_run = reference.id if kind in ("finetune", "linear") and reference is not None else None
    needs_run = kind in ("finetune", "linear") and from_run is None

    def _identical_active() -> bool:
        if cfg is None:
            return False
        mine = to_json(cfg)
        for job in manager.jobs():
            if not job.active or job.kind != kind:
                continue
            try:
                other, _, options = job.run.read_config()
            except (OSError, ValueError, KeyError):
                continue
            if to_json(other) == mine and options.get("from_run") == from_run:
                return True
        return False

    duplicate = _identical_active()
    start = st.button("Start", type="primary", icon=":material/play_arrow:", key="train.start",
                      disabled=cfg is None or needs_run or duplicate,
                      help="This exact job is already running." if duplicate else None)
    if duplicate:
        st.caption("This exact job is already queued or running (a second click would not start it again).")
    if start and cfg is not None and not needs_run:
        with state.user_errors("Could not start: "):
            job = manager.submit(kind, cfg, from_run=from_run, label=runinfo.JOB_TITLES[kind].split(" (")[0])
            st.toast(f"Started {job.label} ({job.id}).", icon=":material/play_arrow:")
            st.rerun()


# --------------------------------------------------------------------------- live jobs
def _events(metrics_path: str) -> list[dict]:
    """A run's metric events, parsed again only when metrics.jsonl has grown since the last read."""
    try:
        size = os.path.getsize(metrics_path)
    except OSError:
        return []
    return _events_at(metrics_path, size)


@st.cache_data(max_entries=32, show_spinner=False)
def _events_at(metrics_path: str, size: int) -> list[dict]:
    return Run(os.path.dirname(metrics_path)).read_metrics()


def _job_status(job) -> None:
    """Title, state, Stop/Resume, and the progress line (step, img/s, ETA)."""
    p = job.progress()
    head, buttons = st.columns([4, 1], vertical_alignment="center")
    badge = {"running": ":blue-badge[running]", "queued": ":gray-badge[queued]",
             "finished": ":green-badge[finished]", "stopped": ":orange-badge[stopped]",
             "failed": ":red-badge[failed]"}.get(job.state, job.state)
    head.markdown(f"**{job.label}** · {badge} · `{job.id}`")
    if job.active:
        if buttons.button("Stop", key=f"stop.{job.id}", icon=":material/stop:",
                          help="Saves a checkpoint; the run can be resumed."):
            manager.stop(job.id)
            st.toast(f"Stopping {job.id}…")
    elif job.state == "stopped" and buttons.button("Resume", key=f"resume.{job.id}",
                                                   icon=":material/play_arrow:"):
        with state.user_errors("Could not resume: "):
            manager.resume(job.id)
            st.rerun()
    if job.state == "queued":
        st.caption(f"Queued: waits for a free slot (at most {manager.max_concurrent} job(s) at once).")
    elif job.state == "failed":
        st.error(job.error or "The job failed.", icon=":material/error:")
    step, total, img_per_s = p["step"], p["total_steps"], p.get("img_per_s")
    speed = f" · {img_per_s:.0f} img/s" if img_per_s and job.state == "running" else ""
    eta = f" · ETA {runinfo.format_seconds(p['eta_s'])}" if job.state == "running" and p.get("eta_s") else ""
    st.progress(float(p["fraction"]), text=f"step {step}/{total or '?'}{speed}{eta}")


def _job_charts(job) -> None:
    events = _events(str(job.run.metrics_path))
    if charts.has_points(events) or any(e.get("kind") == "epoch" for e in events):
        st.plotly_chart(charts.training_figure(events, job.kind), key=f"chart.{job.id}",
                        config={"displayModeBar": False})
    elif job.state == "running":
        st.caption(f"Starting: loading data and building the network (charts appear within "
                   f"{CHART_SECONDS:.0f} s of the first steps)…")
    results = job.run.read_status().get("results") or {}
    acc = results.get("knn_accuracy", results.get("test_accuracy"))
    if job.state == "finished" and isinstance(acc, (int, float)):
        what = "kNN accuracy" if job.kind in ("byol", "evaluate") else "test accuracy"
        st.success(f"Finished: {what} {100 * acc:.1f}% on the test set.", icon=":material/check_circle:")


@st.fragment(run_every=PROGRESS_SECONDS)
def _live_status(job_id: str) -> None:
    job = manager.get(job_id)
    if job is None or not job.active:
        st.rerun(scope="app")  # it ended: redraw the page (final charts, run list) and stop polling
    _job_status(job)


@st.fragment(run_every=CHART_SECONDS)
def _live_charts(job_id: str) -> None:
    job = manager.get(job_id)
    if job is not None:
        _job_charts(job)


@st.fragment(run_every=PROGRESS_SECONDS)
def _watch_for_new_jobs(shown: frozenset[str]) -> None:
    """Jobs started meanwhile (another tab, a queued one) get their card on a full redraw."""
    if {j.id for j in manager.jobs() if j.active} - shown:
        st.rerun(scope="app")


st.subheader("Jobs")
if not manager.jobs():
    st.caption("No job started from this dashboard yet. Earlier runs are listed below.")
live = [j for j in manager.jobs() if j.active]
for job in live:
    # Two fragments per running job: the cheap progress line refreshes often, the charts less so.
    with st.container(border=True):
        _live_status(job.id)
        _live_charts(job.id)
if live:
    _watch_for_new_jobs(frozenset(j.id for j in live))
for ended in [j for j in manager.jobs() if not j.active][:RECENT_JOBS_SHOWN]:
    with st.container(border=True):
        _job_status(ended)
        _job_charts(ended)

# --------------------------------------------------------------------------- past runs
st.subheader("All runs")
infos = runinfo.list_runs(store)
if not infos:
    st.caption(f"No runs in `{store.root}` yet.")
else:
    live_ids = {j.id for j in manager.jobs() if j.active}
    table = [{"run": i.id, "what": i.method, "data set": i.dataset,
              "state": "queued, never started" if i.orphaned else i.state,
              "accuracy": i.accuracy, "labels kept": i.label_fraction, "epochs": i.epochs} for i in infos]
    st.dataframe(table, hide_index=True, column_config={
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "labels kept": st.column_config.NumberColumn(format="percent"),
    }, key="train.runs")
    resumable = [i for i in infos if i.resumable and i.id not in live_ids]
    c1, c2 = st.columns(2)
    with c1:
        if resumable:
            states = {i.id: "queued, never started" if i.orphaned else i.state for i in resumable}
            rid = st.selectbox("Resume a stopped or interrupted run", list(states), key="train.resume_pick",
                               format_func=lambda r: f"{r} ({states[r]})")
            if st.button("Resume", key="train.resume", icon=":material/play_arrow:"):
                with state.user_errors("Could not resume: "):
                    manager.resume(rid)
                    st.rerun()
        else:
            st.caption("Runs that were stopped, or cut off by a restart, can be resumed here.")
    with c2:
        shown = st.selectbox("Charts of a run", [i.id for i in infos], key="train.show_run", index=None,
                             placeholder="Pick a run")
    if shown:
        info = next(i for i in infos if i.id == shown)
        if info.error:
            st.error(info.error, icon=":material/error:")
        events = store.get(shown).read_metrics()
        if charts.has_points(events) or any(e.get("kind") == "epoch" for e in events):
            st.plotly_chart(charts.training_figure(events, info.mode),
                            key="train.past_chart", config={"displayModeBar": False})
        else:
            st.caption("This run logged no training curves.")

"""Job cards for the Train page: a job's title, state, Stop/Resume, progress line and live charts.

While a job runs its progress line refreshes every PROGRESS_SECONDS and its charts every
CHART_SECONDS. Each refresh costs the server and the browser CPU that training would otherwise
get (a chart redraw ~0.3 s of the browser's CPU, a progress line ~0.14 s); see
benchmarks/dashboard_overhead.py.
"""

from __future__ import annotations

import os

import streamlit as st

from byol_core.events import EPOCH
from byol_core.lab.guards import chance_note
from byol_core.lab.jobs import Job, JobManager
from byol_core.lab.run_store import Run, RunStore
from byol_core.lab.stages import get_stage
from byol_core.lab.summary import RunSummary, checked_event
from byol_core.text import markdown_text
from dashboard import charts, state, tables

PROGRESS_SECONDS = 5.0
CHART_SECONDS = 10.0
BADGES = {"running": ":blue-badge[running]", "queued": ":gray-badge[queued]", "finished": ":green-badge[finished]",
          "stopped": ":orange-badge[stopped]", "failed": ":red-badge[failed]"}


def events_of(run: Run) -> list[dict]:
    """A run's metric events (their usable fields), parsed again only when metrics.jsonl has grown since the last read."""
    try:
        size = os.path.getsize(run.metrics_path)
    except OSError:
        return []
    return _events_at(str(run.path), size)


@st.cache_data(max_entries=32, show_spinner=False)
def _events_at(run_path: str, size: int) -> list[dict]:
    return [checked_event(e) for e in Run(run_path).read_metrics()]  # a damaged field never reaches a chart


def draw_training_charts(run: Run, stage_name: str, key: str) -> bool:
    """The run's training figure; False when it logged nothing to draw yet."""
    events = events_of(run)
    if not (charts.has_points(events) or any(e.get("kind") == EPOCH for e in events)):
        return False
    st.plotly_chart(charts.training_figure(events, get_stage(stage_name)), key=key, config={"displayModeBar": False})
    return True


def job_status(manager: JobManager, job: Job) -> None:
    """Title, state, Stop/Resume, and the progress line (step, img/s, ETA; a study's runs done)."""
    p = job.progress()
    stage = get_stage(job.stage)
    head, buttons = st.columns([4, 1], vertical_alignment="center")
    # The label may be a run's name, which a person wrote: shown as text.
    head.markdown(f"**{markdown_text(job.label)}** · {BADGES.get(job.state, job.state)} · `{job.id}`")
    if job.elsewhere:
        st.caption("Started by another dashboard or command on this runs folder; Stop asks it to stop (with a "
                   "checkpoint) through the run's folder.")
    if job.active:
        if buttons.button("Stop", key=f"stop.{job.id}", icon=":material/stop:",
                          help="Saves a checkpoint; the run can be resumed." if stage.resumable else
                          "Stops it; this kind of job cannot be resumed (a study keeps its table so far)."):
            manager.stop(job.id)
            st.toast(f"Stopping {job.id}…")
    elif job.state == "stopped" and stage.resumable and buttons.button("Resume", key=f"resume.{job.id}",
                                                                       icon=":material/play_arrow:"):
        with state.user_errors("Could not resume: "):
            manager.resume(job.id)
            st.rerun()
    if job.state == "queued":
        st.caption(f"Queued: waits for a free slot (at most {manager.max_concurrent} job(s) at once on this "
                   "runs folder, counting every dashboard's and command's).")
        return
    if job.state == "failed":
        st.error(job.error or "The job failed.", icon=":material/error:")
    step, total, img_per_s = p["step"], p["total_steps"], p.get("img_per_s")
    running = job.state == "running"
    speed = f" · {img_per_s:.0f} img/s" if img_per_s and running else ""
    eta = f" · ETA {tables.format_seconds(p['eta_s'])}" if running and p.get("eta_s") else ""
    if total and stage.study:  # a sweep or ablation counts its runs, and says which one is under way
        doing = job.last_event.get("doing") if running else None
        text = f"{step}/{total} runs done{eta}" + (f" · now: {doing}" if doing else "")
    elif total:
        text = f"step {step}/{total}{speed}{eta}"
    else:  # stages without steps (kNN evaluation), or a job still loading its data
        text = "starting…" if running else job.state
    st.progress(float(p["fraction"]), text=text)


def job_charts(job: Job) -> None:
    stage = get_stage(job.stage)
    if stage.study:  # its runs have their own charts; its table is drawn on the Compare page
        if job.state == "finished":
            st.success(f"Finished: {job.progress()['total_steps']} runs. The table and chart with their intervals "
                       "are on the Compare page.", icon=":material/check_circle:")
        elif job.state == "running":
            st.caption("Each run it starts is listed under All runs below; the Compare page draws the table as "
                       "it fills.")
        return
    if not draw_training_charts(job.run, job.stage, key=f"chart.{job.id}") and job.state == "running":
        st.caption(f"Starting: loading data and building the network (charts appear within "
                   f"{CHART_SECONDS:.0f} s of the first steps)…")
    results = job.run.read_status().get("results") or {}
    value = stage.headline(results)
    if job.state == "finished" and value is not None:
        st.success(f"Finished: {stage.metric_name} {100 * value:.1f}% on the test set.", icon=":material/check_circle:")
        if note := chance_note(value, results.get("test_images"), results.get("num_classes")):
            st.warning(f"{note}: use more test images before reading anything into it.", icon=":material/warning:")


def live_jobs(manager: JobManager, recent: int) -> None:
    """Cards for the runs folder's queued and running jobs, whoever started them (refreshing), and the ``recent``
    jobs of this process that ended."""
    live = manager.active_jobs()
    for job in live:
        # Two fragments per running job: the cheap progress line refreshes often, the charts less so.
        with st.container(border=True):
            _live_status(manager, job.id)
            _live_charts(manager, job.id)
    if live:
        _watch_for_new_jobs(manager, frozenset(j.id for j in live))
    for ended in [j for j in manager.jobs() if not j.active][:recent]:
        with st.container(border=True):
            job_status(manager, ended)
            job_charts(ended)


@st.fragment(run_every=PROGRESS_SECONDS)
def _live_status(manager: JobManager, job_id: str) -> None:
    job = manager.get(job_id)
    if job is None or not job.active:
        st.rerun(scope="app")  # it ended: redraw the page (final charts, run list) and stop polling
    job_status(manager, job)


@st.fragment(run_every=CHART_SECONDS)
def _live_charts(manager: JobManager, job_id: str) -> None:
    job = manager.get(job_id)
    if job is not None:
        job_charts(job)


@st.fragment(run_every=PROGRESS_SECONDS)
def _watch_for_new_jobs(manager: JobManager, shown: frozenset[str]) -> None:
    """Jobs started meanwhile (another tab, another dashboard, a queued one) get their card on a full redraw."""
    if {j.id for j in manager.active_jobs()} - shown:
        st.rerun(scope="app")


@st.cache_data(show_spinner=False, max_entries=4)
def _encoder_file(root: str, run_id: str, encoder_mtime: float) -> tuple[bytes, str]:
    from byol_core.lab.export import bundle_bytes, encoder_bundle, loading_snippet

    bundle = encoder_bundle(RunStore(root), run_id)
    return bundle_bytes(bundle), loading_snippet(bundle, f"encoder-{run_id}.pt")


def encoder_download(store: RunStore, summary: RunSummary) -> None:
    """A "Download encoder" button with the Python that loads the file for this run's backbone."""
    with state.user_errors("Cannot export this encoder: "):
        mtime = os.path.getmtime(store.get(summary.id).encoder_path)
        data, snippet = _encoder_file(str(store.root), summary.id, mtime)
        st.download_button("Download encoder", data, file_name=f"encoder-{summary.id}.pt",
                           mime="application/octet-stream", icon=":material/download:", key=f"download.{summary.id}",
                           help="The weights, the architecture and the preprocessing (size, mean, std) in one file; "
                                "`python -m byol_core export <run>` writes the same file.")
        st.code(snippet, language="python")

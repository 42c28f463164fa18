"""Job cards for the Train page: a job's title, state, Stop/Resume, progress line and live charts.

While a job runs its progress line refreshes every PROGRESS_SECONDS and its charts every
CHART_SECONDS. Each refresh costs the server and the browser CPU that training would otherwise
get (a chart redraw ~0.3 s of the browser's CPU, a progress line ~0.14 s); see
benchmarks/dashboard_overhead.py. Stop must answer at once, though: the click's own rerun turns the card to
"stopping…", and from then on a watcher that draws nothing reads the run's status.json every STATE_POLL_SECONDS
and redraws the page the moment it says "stopped" (with Resume), then again once the job has let go of its slot
(Start). The watcher runs only while a job is stopping: polling every running job at that rate cost Chromium
about 7% of a core more (16% against 9%, beside a training job on a busy 2-core machine). What a card shows for
a job's state is decided in one pure function, :func:`card_view`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from byol_core.events import EPOCH
from byol_core.lab.active_runs import ACTIVE, ENDED
from byol_core.lab.guards import chance_note
from byol_core.lab.jobs import Job, JobManager
from byol_core.lab.run_store import Run, RunStore
from byol_core.lab.stages import get_stage
from byol_core.lab.summary import RunSummary, checked_event
from byol_core.text import markdown_text
from dashboard import charts, state, tables

PROGRESS_SECONDS = 5.0
CHART_SECONDS = 10.0
STATE_POLL_SECONDS = 0.5  # while stopping: a status.json read and a lock check, and nothing drawn until it moves
BADGES = {"running": ":blue-badge[running]", "queued": ":gray-badge[queued]", "finished": ":green-badge[finished]",
          "stopping": ":orange-badge[stopping…]", "stopped": ":orange-badge[stopped]", "failed": ":red-badge[failed]",
          "interrupted": ":orange-badge[interrupted]"}


@dataclass(frozen=True)
class CardView:
    """What a job's card shows: its state's badge, which button, and whether speed and ETA mean anything."""

    state: str  # queued, running, stopping, stopped, finished, failed (or another state read from the run)
    can_stop: bool
    can_resume: bool
    live: bool  # training at full speed: img/s and an ETA are shown


def card_view(job_state: str, status_state: str | None, stop_asked: bool, resumable: bool) -> CardView:
    """What the card of a job in ``job_state`` shows, given its run's status.json state and whether Stop was asked.

    The status file leads: a trainer writes 'stopped' (or 'finished', 'failed') a moment before its process has
    exited and the job object has caught up, and the card says so at once (with Resume). Between the click and
    that, the job is "stopping": no Stop button, no ETA.
    """
    state = job_state
    if job_state in ACTIVE:
        if status_state in ENDED:
            state = status_state
        elif stop_asked:
            state = "stopping"
    return CardView(state=state, can_stop=state in ACTIVE, can_resume=state == "stopped" and resumable,
                    live=state == "running")


def view_of(job: Job) -> CardView:
    """:func:`card_view` for ``job`` now: an active job's run folder is read (status.json, the stop request)."""
    active = job.active
    status = job.run.read_status().get("state") if active else None
    stop_asked = active and (job.stop_event.is_set() or job.run.stop_requested())
    return card_view(job.state, status, stop_asked, get_stage(job.stage).resumable)


def _stop(manager: JobManager, job_id: str) -> None:
    """Stop's callback: it runs before the rerun that draws the card, so the card already says "stopping…"."""
    manager.stop(job_id)
    st.toast(f"Stopping {job_id}…")


def _resume(manager: JobManager, job: Job) -> None:
    if job.active and not job.elsewhere:
        manager.wait(job.id, timeout=30.0)  # its trainer wrote 'stopped' and is exiting: a second at most
    manager.resume(job.id)


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


def job_status(manager: JobManager, job: Job) -> CardView:
    """Title, state, Stop/Resume, and the progress line (step, img/s, ETA; a study's runs done); what it showed."""
    p = job.progress()
    stage = get_stage(job.stage)
    view = view_of(job)
    head, buttons = st.columns([4, 1], vertical_alignment="center")
    # The label may be a run's name, which a person wrote: shown as text.
    head.markdown(f"**{markdown_text(job.label)}** · {BADGES.get(view.state, view.state)} · `{job.id}`")
    if job.elsewhere:
        st.caption("Started by another dashboard or command on this runs folder; Stop asks it to stop (with a "
                   "checkpoint) through the run's folder.")
    if view.can_stop:
        buttons.button("Stop", key=f"stop.{job.id}", icon=":material/stop:", on_click=_stop, args=(manager, job.id),
                       help="Saves a checkpoint; the run can be resumed." if stage.resumable else
                       "Stops it; this kind of job cannot be resumed (a study keeps its table so far).")
    elif view.can_resume and buttons.button("Resume", key=f"resume.{job.id}", icon=":material/play_arrow:"):
        with state.user_errors("Could not resume: "):
            _resume(manager, job)
            st.rerun()
    if view.state == "queued":
        st.caption(f"Queued: waits for a free slot (at most {manager.max_concurrent} job(s) at once on this "
                   "runs folder, counting every dashboard's and command's).")
        return view
    if job.state == "failed":
        st.error(job.error or "The job failed.", icon=":material/error:")
    step, total, img_per_s = p["step"], p["total_steps"], p.get("img_per_s")
    speed = f" · {img_per_s:.0f} img/s" if img_per_s and view.live else ""
    eta = f" · ETA {tables.format_seconds(p['eta_s'])}" if view.live and p.get("eta_s") else ""
    if total and stage.study:  # a sweep or ablation counts its runs, and says which one is under way
        doing = job.last_event.get("doing") if view.live else None
        text = f"{step}/{total} runs done{eta}" + (f" · now: {doing}" if doing else "")
    elif total:
        text = f"step {step}/{total}{speed}{eta}"
    else:  # stages without steps (kNN evaluation), or a job still loading its data
        text = "starting…" if view.live else view.state
    if view.state == "stopping":
        text += " · stopping: saving a checkpoint…" if stage.resumable else " · stopping…"
    st.progress(float(p["fraction"]), text=text)
    return view


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


def watch_key(job: Job) -> tuple[str, bool]:
    """What the page must redraw for when it changes: the card's state (but not "stopping", which the card draws
    itself on the click) and whether the job still holds its slot (Start and Resume elsewhere wait for that)."""
    shown = view_of(job).state
    return ("running" if shown == "stopping" else shown), job.active


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
    if job_status(manager, job).state not in ACTIVE:  # stopping, or stopped while its process exits: watch it closely
        _watch_state(job, watch_key(job))


@st.fragment(run_every=STATE_POLL_SECONDS)
def _watch_state(job: Job, shown: tuple[str, bool]) -> None:
    """Redraw the page once the state shown is out of date (read from the run folder, not the job list, so
    polling stays cheap: another dashboard's job is the snapshot ``job`` with a fresh status.json)."""
    if watch_key(job) != shown:
        st.rerun(scope="app")


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

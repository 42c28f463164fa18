"""The Compare page's studies: start a label-efficiency sweep (or the colour ablation) as a job, draw their tables.

A study is a job like a training (:mod:`byol_core.studies.common`): the form only collects choices,
:func:`byol_core.lab.plans.plan` checks them, and the job manager runs it and refuses a duplicate. Its
progress is on the Train page's job list and, while it runs, here.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from byol_core.lab.jobs import Job, JobManager
from byol_core.lab.plans import JobSpec, plan
from byol_core.lab.summary import RunSummary
from byol_core.presets import PRESETS, get_preset
from byol_core.stats_text import clipped_interval, format_difference
from byol_core.studies import tables
from byol_core.studies.ablation import ABLATION
from byol_core.studies.ablation import run_count as ablation_run_count
from byol_core.studies.sweep import DEFAULT_FRACTIONS, DEFAULT_SEEDS, SWEEP, SweepResult, run_counts
from dashboard import charts, job_cards, state, train_form

FRACTION_CHOICES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
MAX_SEEDS = 5
STUDIES = (SWEEP, ABLATION)
KEY = "compare.new_study"  # prefix of the form's widget keys
TITLE = "Label efficiency and the colour ablation"
# The Compare page's open tab. A study started from the form opens this section's tab, so its results are where the
# person looks once the first groups exist (before them the page has no tabs).
COMPARE_SECTION = "compare.section"


def _open_studies_tab() -> None:
    st.session_state[COMPARE_SECTION] = TITLE  # a callback: it runs before the tabs are drawn


def _percent(value: float) -> str:
    return f"{100 * value:g}%"


def _what_it_runs(spec: JobSpec) -> str:
    """How many runs the study starts, by kind: the person's measure of how long it takes."""
    seeds = spec.stage_options["seeds"]
    if spec.stage == SWEEP.name:
        counts = run_counts(len(spec.stage_options["label_fractions"]), seeds)
        total = sum(counts.values())
        trainings = total - counts["kNN evaluations"]
        parts = ", ".join(f"{n} {what}" for what, n in counts.items()) + " (seconds each)"
    else:
        total = trainings = ablation_run_count(seeds)
        parts = f"{total // 2} pretrainings (BYOL and SimCLR, with and without colour) and a linear probe from each"
    return (f"{total} runs: {parts}. About as long as {trainings} Train-page jobs of this preset one after another; "
            "it holds a job slot, so other jobs queue behind it.")


def study_form(manager: JobManager) -> None:
    """Choose a study, its preset, label fractions, seeds and pretraining length; Start submits it."""
    data_cfg = state.get_data_cfg()
    default = state.start_preset(f"{KEY}.preset", data_cfg.name)  # as on the Train page
    with st.container(border=True):
        st.markdown("**Run a label-efficiency sweep** (or the colour ablation)")
        by_name = {s.name: s for s in STUDIES}
        study = by_name[st.radio("Study", list(by_name), format_func=lambda n: by_name[n].title, key=f"{KEY}.kind")]
        c1, c2, c3, c4 = st.columns([2, 3, 1, 2])
        preset = c1.selectbox("Preset", list(PRESETS), index=list(PRESETS).index(default) if default in PRESETS else 0,
                              key=f"{KEY}.preset", help="Starts from the preset tuned for the Data page's data set, "
                                                         "as the Train page does; tiny: seconds-long smoke runs.")
        options: dict = {}
        if study.name == SWEEP.name:
            options["label_fractions"] = c2.multiselect(
                "Label fractions", FRACTION_CHOICES, default=list(DEFAULT_FRACTIONS), format_func=_percent,
                key=f"{KEY}.fractions", help="Shares of the training labels each method may use.")
        options["seeds"] = int(c3.number_input("Seeds", min_value=1, max_value=MAX_SEEDS, value=DEFAULT_SEEDS,
                                               step=1, key=f"{KEY}.seeds",
                                               help="Training seeds from the preset's; 3 or more give intervals."))
        base = get_preset(preset)
        epochs = c4.number_input("Pretraining epochs", min_value=0.01, max_value=10000.0,
                                 value=float(base.byol.optim.epochs), step=1.0, format="%g",
                                 key=f"{KEY}.epochs.{preset}", help="Fewer epochs: a quicker, rougher study.")
        spec = None
        with state.user_errors("Settings: "):
            spec = plan(study.name, base, data=data_cfg, views=state.get_choice().view_overrides(),
                        overrides={"byol.optim.epochs": epochs}, options=options,
                        name=f"{study.name}-{data_cfg.name}", label=f"{study.short_title} · {preset}")
        if spec is not None:
            st.caption(f"{train_form.views_caption(state.get_choice(), preset)} Starts {_what_it_runs(spec)}")
        blocked = train_form.show_guards(spec)  # on the data the study will train and score on
        duplicate = spec is not None and manager.find_active(spec) is not None
        if st.button("Start", type="primary", icon=":material/play_arrow:", key=f"{KEY}.start",
                     disabled=spec is None or duplicate or blocked, on_click=_open_studies_tab,
                     help="This exact study is already running." if duplicate else None) and spec is not None:
            with state.user_errors("Could not start: "):
                job = manager.submit(spec)
                st.toast(f"Started {job.label} ({job.id}); its progress is on the Train page.",
                         icon=":material/play_arrow:")
                st.rerun()
        if duplicate:
            st.caption("This exact study is already queued or running.")


def _active_studies(manager: JobManager) -> list[Job]:
    return [j for j in manager.jobs() if j.active and j.stage in {s.name for s in STUDIES}]


@st.fragment(run_every=job_cards.PROGRESS_SECONDS)
def _study_progress(manager: JobManager, shown: frozenset[str]) -> None:
    """The running studies' progress lines; the page redraws when one ends (its table is then complete)."""
    active = _active_studies(manager)
    if {j.id for j in active} != shown:
        st.rerun(scope="app")
    for job in active:
        job_cards.job_status(manager, job)


def study_results(summaries: Sequence[RunSummary]) -> None:
    """The chosen sweep's accuracy against label fraction with error bars and its declared comparisons, or the
    ablation's bars and drops."""
    studies = [s for s in summaries if s.kind in (SWEEP.run_kind, ABLATION.run_kind) and s.results.get("rows")]
    if not studies:
        st.caption("No study with results yet. Start one above, or from the command line: "
                   "`python -m byol_core sweep --preset digits-quick --label-fractions 0.01,0.1,1 --seeds 3` "
                   "(accuracy against the share of labels, every method, 95% intervals over seeds and test "
                   "images) and "
                   "`python -m byol_core ablation --preset cpu-quick --seeds 3` (BYOL and SimCLR with and without "
                   "colour augmentation).")
        return
    by_study = {s.id: s for s in studies}
    chosen = st.selectbox("Study", list(by_study), key="compare.study",
                          format_func=lambda r: f"{by_study[r].kind} · {by_study[r].dataset} · {by_study[r].state} · {r}")
    study = by_study[chosen]
    rows = [r for r in study.results["rows"] if r.get("mean") is not None]
    if study.kind == SWEEP.run_kind:
        st.plotly_chart(charts.label_efficiency(rows), key="compare.sweep", config={"displayModeBar": False})
        _sweep_verdicts(study.results)
    else:
        for evaluation in dict.fromkeys(r.get("evaluation") for r in rows):
            part = [r for r in rows if r.get("evaluation") == evaluation]
            st.markdown(f"**{evaluation}**")
            st.plotly_chart(charts.ablation_bars(part), key=f"compare.ablation.{evaluation}",
                            config={"displayModeBar": False})
        for drop in study.results.get("drops", []):
            st.caption(f"{drop.get('method')} ({drop.get('evaluation')}): full − no-colour "
                       f"{100 * (drop.get('mean') or 0):+.1f} points, {drop.get('verdict', '')}")
    if study.state == "running":
        st.caption("Still running: the table so far, filled in as each seed finishes.")
    st.dataframe([table_row(r) for r in rows], hide_index=True, key="compare.study_table")


def _sweep_verdicts(results: dict) -> None:
    """What the sweep's bars cover, the declared primary comparison's verdict at each label share, and what
    fewer than 3 seeds mean. Computed again from the rows, so sweeps saved before they held comparisons show too."""
    try:
        sweep = SweepResult.from_dict(results)
    except (KeyError, TypeError, ValueError):  # a damaged run's results lack a field: its table still shows
        return
    st.caption(f"Test accuracy on {sweep.test_images} test images, seeds {sweep.seeds}: the mean with its 95% interval "
               f"{tables.coverage(sweep.summaries())}, clipped to 0–100%. Each method's points are nudged sideways "
               "so that no bar hides another; judge a difference by the declared comparison, not by bars that overlap.")
    lines = []
    for fraction in sweep.label_fractions:
        primary = next((c for c in sweep.comparisons(fraction) if c.primary), None)
        verdict = format_difference(primary.result) if primary else "not both methods yet"
        lines.append(f"- **{_percent(fraction)} of labels**: {verdict}")
    st.markdown("Declared comparison (fixed before the runs; the secondary pairs, Holm-adjusted, are in the "
                "command line's table and the sweep's JSON):\n" + "\n".join(lines))
    note = tables.seed_note(sweep.summaries())
    if note:
        st.warning(note, icon=":material/info:")


def table_row(row: dict) -> dict:
    """One study row as people read it: ``84.7% ± 0.7`` with n, the interval shown (clipped to 0-100%: an
    interval over few seeds can pass either end, an accuracy cannot), what it covers and the spread in points.

    The JSON keeps the raw interval (``ci95``) beside the clipped one.
    """
    shown = {k: row[k] for k in ("method", "augmentation", "evaluation") if k in row}
    if "label_fraction" in row:
        shown["labels"] = f"{100 * row['label_fraction']:.3g}%"
    summary = tables.row_summary(row)
    shown["n"] = row.get("n")
    interval = clipped_interval(summary) if summary is not None else None
    if interval is not None and summary is not None:
        shown["accuracy (95% CI)"] = tables.cell(summary)
        shown["interval"] = f"{100 * interval[0]:.1f} to {100 * interval[1]:.1f}%"
    else:
        shown["accuracy (95% CI)"] = f"{tables.cell(summary)} (n={row.get('n')}, no interval)"
        shown["interval"] = ""
    shown["covers"] = tables.COVERS.get(summary.method, summary.method) if summary is not None else ""
    if row.get("std") is not None:
        shown["std (points)"] = round(100 * row["std"], 1)
    return shown


def study_section(manager: JobManager, summaries: Sequence[RunSummary]) -> None:
    """The whole section: the form, running studies' progress, and the chosen study's results."""
    st.subheader(TITLE)
    study_form(manager)
    active = _active_studies(manager)
    if active:
        _study_progress(manager, frozenset(j.id for j in active))
    study_results(summaries)

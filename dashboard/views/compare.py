"""Compare: one group of like-with-like runs at a time, the comparison declared before its numbers, and every
source of noise (seeds, the labelled subset drawn per seed, the test images) in each interval."""

from __future__ import annotations

import streamlit as st

from byol_core import stats
from byol_core.events import EPOCH
from byol_core.lab import comparison
from byol_core.lab.builtin_stages import KNN
from byol_core.lab.guards import chance_note
from byol_core.lab.plans import plan
from byol_core.lab.summary import RunSummary
from byol_core.presets import get_preset
from byol_core.text import markdown_text
from dashboard import charts, compare_panels, job_cards, run_list, state, tables
from dashboard.study_panel import COMPARE_SECTION, TITLE, study_section  # start a sweep or ablation, its tables

SECTIONS = ("Test accuracy", "Accuracy per epoch", TITLE)
RUNS_OPEN = "compare.runs_open"  # the expander with every run of the group as a table

manager = state.get_manager()
store = manager.store
summaries = [s for s in run_list.list_summaries(store) if not s.archived]  # archived runs stay out of comparisons
groups = comparison.group_runs(summaries)

st.title("Compare")
st.markdown(
    "Every finished run's **test accuracy**, measured on the same held-out images. The question BYOL answers: "
    "with the same few labels, does an encoder pretrained **without labels** (BYOL fine-tuned, linear probe, "
    "kNN) beat a network trained **from scratch**? A **random-init kNN** shows what an untrained network of "
    "the same shape gets for free. Only runs with the same settings (up to their seed) are compared: one group "
    "at a time."
)

if not groups:
    st.info("No finished runs yet. Start BYOL and a supervised baseline on the **Train** page.",
            icon=":material/info:")
    st.page_link("views/train.py", label="Go to Train", icon=":material/arrow_forward:")
    study_section(manager, summaries)  # a study can be the first thing started
    st.stop()

group = compare_panels.pick_group(groups)
compare_panels.group_context(group, comparison.group_differences(group, groups), len(comparison.left_out(summaries)))
dataset = group.config.data.name
shown = tables.compare_rows(group.runs)  # the table, curves and warnings: this group's runs only

# Only the open section is drawn: each plotly chart and table costs the browser a share of a second to draw after
# every rerun, and the page had five charts and two tables.
headline, per_epoch, studies = st.tabs(SECTIONS, key=COMPARE_SECTION, on_change="rerun")
evaluating = any(j.active and j.stage == KNN.name for j in manager.jobs())


@st.fragment(run_every=2.0 if evaluating else None)
def _wait_for_evaluation() -> None:
    if evaluating and not any(j.active and j.stage == KNN.name for j in manager.jobs()):
        st.rerun()


_wait_for_evaluation()


def _load_correct(run: RunSummary):
    """The run's per-test-image correctness (None without predictions.npz, or when the run went away)."""
    try:
        return store.get(run.id).load_correct()
    except OSError:  # deleted since it was listed
        return None


def _headline() -> None:
    """The random-init floor, the method cards, the declared verdicts, the two charts, the table and its CSV."""
    if KNN.method not in group.methods:
        with st.container(border=True):
            st.markdown("**No random-init kNN in this group yet.** It scores an untrained network of the same "
                        "shape: the floor a learned encoder must clear.")
            st.caption(f"Uses this group's settings (network, data, views) with seed {group.config.seed}, so it "
                       "joins the group.")
            if st.button("Run random-init kNN", key="compare.random_knn", icon=":material/play_arrow:",
                         disabled=evaluating):
                with state.user_errors("Could not start: "):
                    manager.submit(plan(KNN.name, get_preset("tiny"), source_config=group.config,
                                        name=f"random-init-{dataset}", label="Random-init kNN"))
                    st.rerun()
    if evaluating:
        st.info("A kNN evaluation is running; this page refreshes when it ends.", icon=":material/hourglass_top:")
    # Runs of one method in the group are seeds of one result: mean with its 95% interval over seeds and test images.
    results = comparison.method_results(group, _load_correct)  # the cards', verdicts' and bar chart's numbers
    pair, by_person = compare_panels.declare_pair(group.methods)
    primary, secondary = comparison.declared_comparisons(results, pair)
    compare_panels.method_cards(results)
    compare_panels.declared_verdict(primary, pair, by_person)
    compare_panels.secondary_list(secondary)
    differences = [c for c in (primary, *secondary) if c is not None and c.difference is not None]
    if differences:
        st.plotly_chart(compare_panels.difference_figure(differences), key="compare.differences",
                        config={"displayModeBar": False})
    n_test = next((r["test_images"] for r in shown if r.get("test_images")), None)
    if n_test:
        st.caption(f"Test set: {n_test} images, so one run's accuracy near 90% is known to about "
                   f"±{100 * stats.binomial_half_width(n_test, 0.9):.1f} points (95%).")
    at_chance = [(r, note) for r in shown if (note := chance_note(r["accuracy"], r["test_images"], r["num_classes"]))]
    if at_chance:
        named = "; ".join(f"{markdown_text(r['label'])}: {note}" for r, note in at_chance)  # labels carry run names
        st.warning(f"Cannot be told from guessing: {named}. Add test images (or labels) before comparing these.",
                   icon=":material/warning:")
    st.plotly_chart(charts.accuracy_bar(list(results.values())), key="compare.bar", config={"displayModeBar": False})
    # Drawn only while open: without it a warm reload took 1.01 s instead of 1.24 s (benchmarks/page_ab.py). The
    # cards and charts above carry the results; this is every run behind them. A fixed label: Streamlit closes an expander whose
    # label changes, and a run that finishes would change a count in it.
    every = st.expander("Every run behind these numbers, as in the CSV", key=RUNS_OPEN, on_change="rerun",
                        icon=":material/table_rows:")
    if every.open:
        with every:
            st.dataframe(
                [{k: r[k] for k in tables.CSV_COLUMNS} for r in shown], hide_index=True, key="compare.table",
                column_config={"accuracy": st.column_config.NumberColumn("test accuracy", format="percent"),
                               "label_fraction": st.column_config.NumberColumn("labels kept", format="percent")},
            )
    st.download_button("Download CSV", tables.rows_to_csv(shown), file_name=f"byol-compare-{dataset}-{group.key}.csv",
                       mime="text/csv", icon=":material/download:", key="compare.csv")


def _per_epoch() -> None:
    """Validation accuracy after each epoch: pretraining and supervised runs on charts of their own."""
    st.caption("Accuracy on the validation split after each epoch (kNN during pretraining, when its check was on): "
               "what training may look at. The Test accuracy tab's numbers are the test set, scored once at the end.")
    # Pretraining epochs (over every image) and supervised epochs (over the few labels) are not one axis.
    curves: dict[bool, list] = {True: [], False: []}
    for run, r in zip(group.runs, shown, strict=True):
        xs, ys = charts.series(job_cards.events_of(store.get(run.id)), EPOCH, "epoch", run.stage_info.curve_metric)
        if xs:
            curves[run.stage_info.pretraining].append((r["label"], r["method"], xs, ys))
    columns = st.columns(2)
    for column, (pretraining, title) in zip(columns, ((True, "Pretraining (kNN on validation)"),
                                                      (False, "Supervised and probes (validation accuracy)")),
                                            strict=True):
        with column:
            st.markdown(f"**{title}**")
            if curves[pretraining]:
                st.plotly_chart(charts.accuracy_curves(curves[pretraining]), key=f"compare.curves.{pretraining}",
                                config={"displayModeBar": False})
            else:
                st.caption("No per-epoch accuracies logged yet.")


for tab, draw in ((headline, _headline), (per_epoch, _per_epoch), (studies, lambda: study_section(manager, summaries))):
    if tab.open:
        with tab:
            draw()

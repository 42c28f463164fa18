"""Compare: the test accuracy of every finished run side by side, and how it grew per epoch."""

from __future__ import annotations

from collections import Counter

import streamlit as st

from byol_core import stats, stats_text
from byol_core.events import EPOCH
from byol_core.lab import comparison
from byol_core.lab.builtin_stages import BYOL, FINETUNE, KNN, LINEAR, SCRATCH
from byol_core.lab.guards import chance_note
from byol_core.lab.plans import plan
from byol_core.lab.summary import list_summaries
from byol_core.presets import get_preset
from byol_core.text import markdown_text
from dashboard import charts, job_cards, state, tables
from dashboard.study_panel import study_section  # start a sweep or ablation, draw their tables

manager = state.get_manager()
store = manager.store
summaries = [s for s in list_summaries(store) if not s.archived]  # archived runs stay out of comparisons
rows = tables.compare_rows(summaries)

st.title("Compare")
st.markdown(
    "Every finished run's **test accuracy**, measured on the same held-out images. The question BYOL answers: "
    "with the same few labels, does an encoder pretrained **without labels** (BYOL fine-tuned, linear probe, "
    "kNN) beat a network trained **from scratch**? A **random-init kNN** shows what an untrained network of "
    "the same shape gets for free."
)

datasets = sorted({r["dataset"] for r in rows} | {s.dataset for s in summaries if s.pretrained})
current = state.get_data_cfg().name
if not datasets:
    st.info("No finished runs yet. Start BYOL and a supervised baseline on the **Train** page.",
            icon=":material/info:")
    st.page_link("views/train.py", label="Go to Train", icon=":material/arrow_forward:")
    study_section(manager, summaries)  # a study can be the first thing started
    st.stop()

c1, c2 = st.columns([1, 2])
dataset = c1.selectbox("Data set", datasets, index=datasets.index(current) if current in datasets else 0,
                       key="compare.dataset")
# One label share at a time: runs with other labels are other experiments, never seeds of this one.
runs_at = Counter(r["label_fraction"] for r in rows if r["dataset"] == dataset)
fractions = sorted(runs_at)
busiest = max(fractions, key=lambda f: (runs_at[f], f)) if fractions else None
fraction = c2.selectbox("Labels kept", fractions, index=fractions.index(busiest) if fractions else None,
                        key=f"compare.fraction.{dataset}", format_func=lambda v: f"{100 * v:g}%",
                        help="The label efficiency sweep below draws every share side by side.")
shown = [r for r in rows if r["dataset"] == dataset and r["label_fraction"] == fraction]

# --------------------------------------------------------------------------- random-init kNN baseline
byol_here = [s for s in summaries if s.pretrained and s.dataset == dataset]
has_random = any(r["method"] == KNN.method for r in rows if r["dataset"] == dataset)
evaluating = any(j.active and j.stage == KNN.name for j in manager.jobs())
if not has_random:
    with st.container(border=True):
        st.markdown(f"**No random-init kNN for {dataset} yet.** It scores an untrained network of the same shape: "
                    "the floor a learned encoder must clear.")
        if byol_here:
            choices = {"source_config": byol_here[0].config}
            st.caption(f"Uses the network and data of BYOL run `{byol_here[0].id}`.")
        else:
            choices = {"data": state.get_data_cfg(), "augment": state.get_augment_cfg()}
            st.caption("Uses the tiny preset's network on the Data page's data set.")
        if st.button("Run random-init kNN", key="compare.random_knn", icon=":material/play_arrow:",
                     disabled=evaluating):
            with state.user_errors("Could not start: "):
                manager.submit(plan(KNN.name, get_preset("tiny"), **choices, name=f"random-init-{dataset}",
                                    label="Random-init kNN"))
                st.rerun()
if evaluating:
    st.info("A kNN evaluation is running; this page refreshes when it ends.", icon=":material/hourglass_top:")


@st.fragment(run_every=2.0 if evaluating else None)
def _wait_for_evaluation() -> None:
    if evaluating and not any(j.active and j.stage == KNN.name for j in manager.jobs()):
        st.rerun()


_wait_for_evaluation()

if not shown:
    st.info(f"No finished run with a test accuracy on {dataset} yet.", icon=":material/info:")
    study_section(manager, summaries)
    st.stop()

# --------------------------------------------------------------------------- headline
# Runs of one method at the same labels are seeds of one result: mean with its 95% interval, never the best.
by_id = {s.id: s for s in summaries}
methods = comparison.method_stats([by_id[r["run_id"]] for r in shown])  # the cards' and the bar chart's numbers


def _headline(summary: stats.Summary) -> dict[str, str]:
    """A metric card's value (mean ± half-width, short enough for the card) and its full reading as help."""
    value = f"{100 * summary.mean:.1f}%" + (f" ± {100 * summary.half_width:.1f}" if summary.half_width else "")
    return {"value": value, "help": f"{stats_text.format_ci(summary)}; n = seeds (runs with the same settings)."}


byol_methods = [s.method for s in (FINETUNE, LINEAR, BYOL) if s.method in methods]
cols = st.columns(4)
if byol_methods:
    top = max(byol_methods, key=lambda m: methods[m].summary.mean)
    cols[0].metric(f"Best pretrained method ({top})", **_headline(methods[top].summary))
for col, method in ((cols[1], SCRATCH.method), (cols[2], KNN.method)):
    if method in methods:
        col.metric(method[0].upper() + method[1:], **_headline(methods[method].summary))
cols[3].metric("Finished runs", len(shown))
if byol_methods and SCRATCH.method in methods:
    seeds, diff = methods[top].paired_with(methods[SCRATCH.method])
    if diff is not None:
        box = st.success if diff.significant else st.info
        box(stats_text.format_difference(diff), icon=":material/balance:")
    else:
        st.info(f"{top} and scratch share no seed yet: run both with the same seed to compare them.",
                icon=":material/balance:")
    if len(seeds) < 2:
        st.caption("One seed per method gives no interval of the difference: start the same jobs with two more "
                   "seeds (Train → More settings → Seed) to tell a real gain from noise.")
n_test = next((r["test_images"] for r in shown if r.get("test_images")), None)
if n_test:
    st.caption(f"Test set: {n_test} images, so one run's accuracy near 90% is known to about "
               f"±{100 * stats.binomial_half_width(n_test, 0.9):.1f} points (95%).")
at_chance = [(r, note) for r in shown if (note := chance_note(r["accuracy"], r["test_images"], r["num_classes"]))]
if at_chance:
    named = "; ".join(f"{markdown_text(r['label'])}: {note}" for r, note in at_chance)  # labels carry run names
    st.warning(f"Cannot be told from guessing: {named}. Add test images (or labels) before comparing these.",
               icon=":material/warning:")

# --------------------------------------------------------------------------- table, chart, CSV
st.plotly_chart(charts.accuracy_bar(methods.values()), key="compare.bar", config={"displayModeBar": False})
st.dataframe(
    [{k: r[k] for k in tables.CSV_COLUMNS} for r in shown], hide_index=True, key="compare.table",
    column_config={"accuracy": st.column_config.NumberColumn("test accuracy", format="percent"),
                   "label_fraction": st.column_config.NumberColumn("labels kept", format="percent")},
)
st.download_button("Download CSV", tables.rows_to_csv(shown), file_name=f"byol-compare-{dataset}.csv",
                   mime="text/csv", icon=":material/download:", key="compare.csv")

st.subheader("Accuracy per epoch")
st.caption("Accuracy on the validation split after each epoch (kNN during pretraining, when its check was on): "
           "what training may look at. The bars above are the test set, scored once at the end.")
# Pretraining epochs (over every image) and supervised epochs (over the few labels) are not one axis.
groups: dict[bool, list] = {True: [], False: []}
for r in shown:
    summary = by_id[r["run_id"]]
    xs, ys = charts.series(job_cards.events_of(store.get(summary.id)), EPOCH, "epoch", summary.stage_info.curve_metric)
    if xs:
        groups[summary.stage_info.pretraining].append((r["label"], r["method"], xs, ys))
columns = st.columns(2)
for column, (pretraining, title) in zip(columns, ((True, "Pretraining (kNN on validation)"),
                                                  (False, "Supervised and probes (validation accuracy)")),
                                        strict=True):
    with column:
        st.markdown(f"**{title}**")
        if groups[pretraining]:
            st.plotly_chart(charts.accuracy_curves(groups[pretraining]), key=f"compare.curves.{pretraining}",
                            config={"displayModeBar": False})
        else:
            st.caption("No per-epoch accuracies logged yet.")

# --------------------------------------------------------------------------- sweeps and ablations
study_section(manager, summaries)

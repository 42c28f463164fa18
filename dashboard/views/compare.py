"""Compare: the test accuracy of every finished run side by side, and how it grew per epoch."""

from __future__ import annotations

import dataclasses

import streamlit as st

from byol_core.embeddings import RANDOM_INIT
from byol_core.presets import get_preset
from dashboard import charts, runinfo, state

manager = state.get_manager()
store = manager.store
infos = runinfo.list_runs(store)
rows = runinfo.compare_rows(infos)

st.title("Compare")
st.markdown(
    "Every finished run's **test accuracy**, measured on the same held-out images. The question BYOL answers: "
    "with the same few labels, does an encoder pretrained **without labels** (BYOL fine-tuned, linear probe, "
    "kNN) beat a network trained **from scratch**? A **random-init kNN** shows what an untrained network of "
    "the same shape gets for free."
)

datasets = sorted({r["dataset"] for r in rows} | {i.dataset for i in infos if i.mode == "byol"})
current = state.get_data_cfg().name
if not datasets:
    st.info("No finished runs yet. Start BYOL and a supervised baseline on the **Train** page.",
            icon=":material/info:")
    st.page_link("views/train.py", label="Go to Train", icon=":material/arrow_forward:")
    st.stop()

c1, c2 = st.columns([1, 2])
dataset = c1.selectbox("Data set", datasets, index=datasets.index(current) if current in datasets else 0,
                       key="compare.dataset")
fractions = sorted({r["label_fraction"] for r in rows if r["dataset"] == dataset})
chosen_fractions = c2.multiselect("Labels kept", fractions, default=fractions, key="compare.fractions",
                                  format_func=lambda v: f"{100 * v:g}%")
shown = [r for r in rows if r["dataset"] == dataset and r["label_fraction"] in chosen_fractions]

# --------------------------------------------------------------------------- random-init kNN baseline
byol_here = [i for i in infos if i.mode == "byol" and i.dataset == dataset and i.state == "finished"]
has_random = any(r["method"] == "random-init kNN" for r in rows if r["dataset"] == dataset)
evaluating = any(j.active and j.kind == "evaluate" for j in manager.jobs())
if not has_random:
    with st.container(border=True):
        st.markdown(f"**No random-init kNN for {dataset} yet.** It scores an untrained network of the same shape: "
                    "the floor a learned encoder must clear.")
        if byol_here:
            base = byol_here[0].cfg
            st.caption(f"Uses the network and data of BYOL run `{byol_here[0].id}`.")
        else:
            base = dataclasses.replace(get_preset("tiny"), data=state.get_data_cfg(), augment=state.get_augment_cfg())
            st.caption("Uses the tiny preset's network on the Data page's data set.")
        if st.button("Run random-init kNN", key="compare.random_knn", icon=":material/play_arrow:",
                     disabled=evaluating):
            with state.user_errors("Could not start: "):
                manager.submit("evaluate", dataclasses.replace(base, name=f"{RANDOM_INIT}-{dataset}"),
                               label="Random-init kNN")
                st.rerun()
if evaluating:
    st.info("A kNN evaluation is running; this page refreshes when it ends.", icon=":material/hourglass_top:")


@st.fragment(run_every=2.0 if evaluating else None)
def _wait_for_evaluation() -> None:
    if evaluating and not any(j.active and j.kind == "evaluate" for j in manager.jobs()):
        st.rerun()


_wait_for_evaluation()

if not shown:
    st.info(f"No finished run with a test accuracy on {dataset} yet.", icon=":material/info:")
    st.stop()

# --------------------------------------------------------------------------- headline
best: dict[str, float] = {}
for r in shown:
    best[r["method"]] = max(best.get(r["method"], 0.0), r["accuracy"])
byol_methods = [m for m in ("BYOL fine-tuned", "BYOL linear probe", "BYOL kNN") if m in best]
cols = st.columns(4)
if byol_methods:
    top = max(byol_methods, key=best.get)
    scratch = best.get("supervised from scratch")
    cols[0].metric(f"Best with BYOL ({top})", f"{100 * best[top]:.1f}%",
                   delta=None if scratch is None else f"{100 * (best[top] - scratch):+.1f} pts vs scratch")
if "supervised from scratch" in best:
    cols[1].metric("Supervised from scratch", f"{100 * best['supervised from scratch']:.1f}%")
if "random-init kNN" in best:
    cols[2].metric("Random-init kNN", f"{100 * best['random-init kNN']:.1f}%")
cols[3].metric("Finished runs", len(shown))
if "BYOL kNN" in best and "random-init kNN" in best:
    gain = 100 * (best["BYOL kNN"] - best["random-init kNN"])
    st.caption(f"BYOL kNN minus random-init kNN: **{gain:+.1f} points**: what pretraining without labels added to "
               "the same network's features (kNN on the same labelled images).")

# --------------------------------------------------------------------------- table, chart, CSV
st.plotly_chart(charts.accuracy_bar(shown), key="compare.bar", config={"displayModeBar": False})
st.dataframe(
    [{k: r[k] for k in runinfo.CSV_COLUMNS} for r in shown], hide_index=True, key="compare.table",
    column_config={"accuracy": st.column_config.NumberColumn("test accuracy", format="percent"),
                   "label_fraction": st.column_config.NumberColumn("labels kept", format="percent")},
)
st.download_button("Download CSV", runinfo.rows_to_csv(shown), file_name=f"byol-compare-{dataset}.csv",
                   mime="text/csv", icon=":material/download:", key="compare.csv")

st.subheader("Accuracy per epoch")
st.caption("Test accuracy after each epoch for supervised runs; kNN accuracy during BYOL pretraining "
           "(when its kNN check was on).")
by_id = {i.id: i for i in infos}
curves = []
for r in shown:
    info = by_id[r["run_id"]]
    xs, ys = runinfo.accuracy_curve(store.get(info.id), info.mode)
    if xs:
        curves.append((r["label"], r["method"], xs, ys))
if curves:
    st.plotly_chart(charts.accuracy_curves(curves), key="compare.curves", config={"displayModeBar": False})
else:
    st.caption("No per-epoch accuracies logged yet.")

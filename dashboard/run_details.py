"""What exactly a run was, under its charts on the Train page: its name and note, the full config,
the fields that differ from another run, and archiving or deleting it.

Every change goes through ``byol_core`` (:func:`~byol_core.lab.annotations.annotate`,
:meth:`~byol_core.lab.run_store.RunStore.delete`); this module only draws the controls and says what happened.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import streamlit as st

from byol_core.lab.annotations import MAX_NAME_CHARS, MAX_NOTE_CHARS, annotate
from byol_core.lab.run_store import RunStore
from byol_core.lab.summary import RunSummary, run_config_diff
from dashboard import state


def show(store: RunStore, summary: RunSummary, summaries: Sequence[RunSummary]) -> None:
    """The provenance panel of ``summary``; ``summaries`` are the runs it may be compared with."""
    with st.container(border=True):
        st.markdown(f"**About this run** · `{summary.id}`" + (" · :gray-badge[archived]" if summary.archived else ""))
        st.caption(facts(summary))
        _name_and_note(store, summary)
        with st.expander("Full config (config.json)"), state.user_errors():
            st.code(json.dumps(store.get(summary.id).read_record(), indent=2, sort_keys=True), language="json")
        _diff(summary, summaries)
        _archive_and_delete(store, summary, summaries)


def facts(summary: RunSummary) -> str:
    """One line of what ran: method, data, seed, learning rate, views, and the epochs and steps actually run."""
    parts = [summary.method, summary.state, f"data {summary.dataset or '?'}"]
    if summary.seed is not None:
        parts.append(f"seed {summary.seed}")
    if summary.lr is not None:
        parts.append(f"lr {summary.lr:g}")
    if summary.epochs_run is not None or summary.steps_run is not None:
        total = f"/{summary.total_steps}" if summary.total_steps else ""
        parts.append(f"{summary.epochs_run or 0:g} epochs, {summary.steps_run or 0}{total} steps run")
    if summary.source_run:
        parts.append(f"from run {summary.source_run}")
    views = f"  \nViews: {summary.augmentation}" if summary.augmentation else ""
    return " · ".join(parts) + views


def _name_and_note(store: RunStore, summary: RunSummary) -> None:
    name_key, note_key = f"details.name.{summary.id}", f"details.note.{summary.id}"
    # Seeded from the file the first time the run is shown; afterwards the person's edits are kept.
    st.session_state.setdefault(name_key, summary.display_name)
    st.session_state.setdefault(note_key, summary.note)
    with st.form(key=f"details.form.{summary.id}", border=False):
        name = st.text_input("Name", key=name_key, max_chars=MAX_NAME_CHARS, placeholder=summary.name,
                             help="Shown in run lists, pickers, Compare and its CSV. Empty: the config's name.")
        note = st.text_area("Note", key=note_key, max_chars=MAX_NOTE_CHARS, height=80,
                            placeholder="What this run was for, what you changed, what you saw.")
        if st.form_submit_button("Save name and note", key=f"details.save.{summary.id}", icon=":material/save:"):
            with state.user_errors("Could not save: "):
                annotate(store.get(summary.id), name=name, note=note)
                st.toast(f"Saved the name and note of {summary.id}.", icon=":material/save:")
                st.rerun()  # every list on the page shows the new name


def _cell(value: Any) -> str:
    """A config value as text, so one table column can hold numbers, text and none alike."""
    return value if isinstance(value, str) else json.dumps(value)


def _diff(summary: RunSummary, summaries: Sequence[RunSummary]) -> None:
    others = {s.id: s for s in summaries if s.id != summary.id and s.config is not None}
    if summary.config is None or not others:
        st.caption("No other run with a readable config to compare with." if summary.config is not None
                   else "This run's config cannot be read, so it cannot be compared.")
        return
    other_id = st.selectbox("Diff against", list(others), index=None, placeholder="Pick a run to compare with",
                            format_func=lambda r: others[r].short(), key=f"details.diff.{summary.id}",
                            help="Lists only the fields whose values differ.")
    if other_id is None:
        return
    changes = run_config_diff(summary, others[other_id])
    if not changes:
        st.success("Same stage, source run and config: these runs differ only in chance and in how far they ran.",
                   icon=":material/check:")
        return
    st.dataframe([{"field": c.field, "this run": _cell(c.before), "other run": _cell(c.after)} for c in changes],
                 hide_index=True, key=f"details.diff_table.{summary.id}")


def _archive_and_delete(store: RunStore, summary: RunSummary, summaries: Sequence[RunSummary]) -> None:
    left, right = st.columns(2)
    with left:
        label, icon = ("Unarchive", ":material/unarchive:") if summary.archived else ("Archive", ":material/archive:")
        if st.button(label, key=f"details.archive.{summary.id}", icon=icon,
                     help="Archived runs are hidden from the run list, Compare and Embeddings; nothing is deleted."):
            with state.user_errors(f"Could not {label.lower()}: "):
                annotate(store.get(summary.id), archived=not summary.archived)
                st.toast(f"{label}d run {summary.id}.", icon=icon)
                st.rerun()
    with right:
        sure = st.checkbox(f"Yes, delete run {summary.id} and its files", key=f"details.confirm_delete.{summary.id}")
        started_here = sum(s.source_run == summary.id for s in summaries)
        if started_here:
            st.caption(f"{started_here} run(s) started from this one keep their files and results, but can no "
                       "longer be traced back to it.")
        if st.button("Delete", key=f"details.delete.{summary.id}", icon=":material/delete:", disabled=not sure,
                     help="Removes the run's folder: config, metrics, checkpoint and encoder. Cannot be undone."):
            with state.user_errors("Could not delete: "):
                store.delete(summary.id)
                state.get_manager().forget(summary.id)  # its ended job card would point at a missing folder
                st.toast(f"Deleted run {summary.id}.", icon=":material/delete:")
                st.rerun()

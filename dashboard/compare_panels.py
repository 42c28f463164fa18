"""The Compare page's panels: which group of runs is compared, the comparison declared before its numbers, each
method's card, the declared verdict and the secondary comparisons (Holm), and a plot of the differences.

Every number comes from :mod:`byol_core.lab.comparison`; these panels only draw it. The picked group and the
declared pair live in session state under plain keys, so they stay when new runs or groups appear, and when the
person leaves the page and comes back.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st

from byol_core.lab.comparison import Comparison, Group, MethodResult, default_pair
from byol_core.stats_text import (
    clipped_interval,
    format_ci,
    format_difference,
    interval_text,
    raw_interval_text,
    too_few_seeds_note,
)
from byol_core.text import markdown_text
from dashboard.figure_memo import memo_figure

CHOSEN_GROUP = "compare.chosen_group"  # the group the page shows, kept until the person picks another
DECLARED = "compare.declared"          # the pair the person declared, (A, B); None: the default declared pair
CARDS_PER_ROW = 4


def pick_group(groups: Sequence[Group]) -> Group:
    """The group to show: the one shown before (the person's pick stays when other groups appear), else the
    group with the most runs."""
    by_key = {g.key: g for g in groups}
    keys = list(by_key)
    chosen = st.session_state.get(CHOSEN_GROUP)
    if chosen not in by_key:
        chosen = keys[0]  # group_runs puts the group with the most runs first
    picked = st.selectbox(
        "Comparison group", keys, index=keys.index(chosen), key="compare.group",
        format_func=lambda k: by_key[k].label(),
        help="Runs with the same settings (data set, label share, network, views, training), up to their seed: the "
             "seeds of one comparison, on the same test images. Runs of other groups never enter this page's numbers.")
    st.session_state[CHOSEN_GROUP] = picked
    return by_key[picked]


def group_context(chosen: Group, differences: list[str], left_out: int) -> None:
    """How the shown group differs from the others, and which runs no group holds."""
    if differences:
        lines = "\n".join(f"- {markdown_text(line)}" for line in differences)
        st.caption(f"{len(differences)} other group(s) are not shown here. This group differs from them in:\n{lines}")
    if left_out:
        st.caption(f"{left_out} damaged run(s) without a readable config are in no group; the Train page names "
                   "what is wrong with each.")
    st.caption(chosen.subset_text())


def declare_pair(methods: list[str]) -> tuple[tuple[str, str] | None, bool]:
    """The declared comparison for these methods and whether the person declared it (else the default one).

    The pair is declared in a form, before its difference is shown; it is never picked by a test number.
    """
    default = default_pair(methods)
    mine = st.session_state.get(DECLARED)
    usable = mine is not None and set(mine) <= set(methods)
    pair = tuple(mine) if usable else default
    if mine is not None and not usable:
        st.caption(f"Your declared {mine[0]} vs {mine[1]} has no runs of both methods in this group; the default "
                   "declared comparison is shown.")
    with st.expander("Declare another comparison (before looking at its numbers)"):
        if len(methods) < 2:
            st.caption("This group holds one method: run another with the same settings to compare.")
            return pair, False
        with st.form("compare.declare_form", border=False):
            c1, c2 = st.columns(2)
            a = c1.selectbox("A", methods, index=methods.index(pair[0]) if pair else 0, key="compare.declare_a")
            b = c2.selectbox("B (the difference is A minus B)", methods, index=methods.index(pair[1]) if pair else 1,
                             key="compare.declare_b")
            submitted = st.form_submit_button("Declare A vs B", key="compare.declare")
        if submitted and a == b:
            st.error("Pick two different methods to compare.")
        elif submitted:
            st.session_state[DECLARED] = (a, b)
            pair, usable = (a, b), True
        if usable and st.button("Back to the default declared comparison", key="compare.declare_reset"):
            st.session_state[DECLARED] = None
            st.rerun()
    return pair, usable and pair != default  # type: ignore[return-value]


def method_cards(results: dict[str, MethodResult]) -> None:
    """A card per method (in METHOD_ORDER): the mean with its interval clipped to 0-100%, the raw interval and
    what it covers in the help, and what to read into it when few seeds or no per-image scores stand behind it."""
    items = list(results.values())
    notes = {r.method: [n for n in (r.note, too_few_seeds_note(r.summary)) if n] for r in items}
    shared = [n for n in notes[items[0].method] if all(n in found for found in notes.values())] if items else []
    for start in range(0, len(items), CARDS_PER_ROW):
        for col, result in zip(st.columns(CARDS_PER_ROW), items[start:start + CARDS_PER_ROW], strict=False):
            s = result.summary
            col.metric(result.method[0].upper() + result.method[1:], interval_text(s),
                       help=f"{format_ci(s)}; {raw_interval_text(s)}. Runs: {', '.join(result.run_ids)}.")
            for note in notes[result.method]:
                if note not in shared:
                    col.caption(note)
    for note in shared:  # what holds for every card, said once
        st.caption(f"Every method: {note}")


def declared_verdict(comparison: Comparison | None, pair: tuple[str, str] | None, by_person: bool) -> None:
    """The declared comparison's difference, named as declared (never the best method by test accuracy)."""
    if pair is None:
        st.info("No declared comparison in this group: it needs runs of two methods. Declare a pair above once "
                "another method has run.", icon=":material/balance:")
        return
    how = "declared by you before its numbers were shown" if by_person else "the default, declared before any run"
    st.markdown(f"**Declared comparison: {pair[0]} vs {pair[1]}** ({how}; never chosen by test accuracy)")
    if comparison is None:
        st.info(f"{pair[0]} or {pair[1]} has no finished run in this group yet.", icon=":material/balance:")
        return
    if comparison.difference is None:
        st.info(comparison.note, icon=":material/balance:")
        return
    box = st.success if comparison.difference.significant else st.info
    box(markdown_text(format_difference(comparison.difference)), icon=":material/balance:")
    for note in (comparison.note, too_few_seeds_note(comparison.difference.difference)):
        if note:
            st.caption(note)


def secondary_list(others: list[Comparison]) -> None:
    """The secondary comparisons present in the group, judged with Holm's correction over those with a p-value."""
    if not others:
        return
    k = sum(c.difference is not None and c.difference.p_value is not None for c in others)
    st.markdown(f"**Secondary comparisons**, with Holm's correction over {k} comparison{'s' if k != 1 else ''} "
                "(their verdicts use Holm-adjusted p-values):")
    lines = [format_difference(c.difference) if c.difference is not None else c.note for c in others]
    notes = [f" ({c.note})" if c.note and c.difference is not None else "" for c in others]
    st.markdown("\n".join(f"- {markdown_text(line + note)}" for line, note in zip(lines, notes, strict=True)))


@memo_figure
def difference_figure(comparisons: Sequence[Comparison]) -> go.Figure:
    """Each difference (A minus B, in points) as a point with its 95% interval clipped to ±100, and a zero line:
    an interval that crosses it is inside the noise."""
    shown = [c for c in comparisons if c.difference is not None]
    names = [f"{c.a} − {c.b}" for c in shown]
    summaries = [c.difference.difference for c in shown]  # type: ignore[union-attr]
    ends = [clipped_interval(s, (-1.0, 1.0)) or (s.mean, s.mean) for s in summaries]
    fig = go.Figure(go.Scatter(
        x=[100 * s.mean for s in summaries], y=names, mode="markers", marker={"size": 10, "color": "#111827"},
        error_x={"type": "data", "symmetric": False, "array": [100 * (high - s.mean) for s, (_, high) in
                                                                zip(summaries, ends, strict=True)],
                 "arrayminus": [100 * (s.mean - low) for s, (low, _) in zip(summaries, ends, strict=True)]},
        customdata=[[raw_interval_text(s)] for s in summaries],
        hovertemplate="%{y}: %{x:+.1f} points<br>%{customdata[0]}<extra></extra>", showlegend=False))
    fig.add_vline(x=0, line={"color": "#dc2626", "dash": "dash"})
    fig.update_layout(xaxis={"title": "difference in test accuracy (points), 95% interval", "zeroline": False},
                      yaxis={"autorange": "reversed", "title": None}, template="plotly_white",
                      height=90 + 40 * len(shown), margin={"l": 10, "r": 20, "t": 10, "b": 40})
    return fig

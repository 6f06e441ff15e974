"""Table: every answer of several runs under each judge, to sort, filter and group.

One row per (run, answer, judge); a column header sorts. "Only rows that differ" sets
two runs (the same cells) or two judges (the same answers) side by side, as promptfoo
does. Each row links to its answer on the Answers page. Cells are text, never markup.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from landscape_core.errors import UserError
from landscape_core.readers.table import GROUPABLE, answers_table, differing, filter_table
from landscape_core.readers.table import group_summary as summary
from pages.common import answer_link, pick_runs, show_user_error, store, store_root

VIEWS = {"rows": "Rows", "group": "Group by", "differ": "Only rows that differ"}
FILTERED = ("run", "judge", "verdict", "state", "label")


@st.cache_data(ttl=5)  # the root keys the cache: one store per process, but tests swap it
def _table(root: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    return answers_table(store(), run_ids)


def _links(run_ids: pd.Series, idxs: pd.Series, prompts: pd.Series) -> list[str]:
    return [answer_link(r, i, p) for r, i, p in zip(run_ids, idxs, prompts, strict=True)]


st.title("Table")
runs = pick_runs("Runs", key="table-runs", multiple=True)
if not runs:
    st.stop()
table = _table(store_root(), tuple(r["run_id"] for r in runs))
if table.empty:
    st.info("These runs have no scored answers yet.")
    st.stop()

with st.expander("Filter", expanded=True, icon=":material/filter_alt:"):
    columns = st.columns(len(FILTERED))
    chosen = {
        name: column.multiselect(name, sorted(table[name].unique()), key=f"table-{name}")
        for column, name in zip(columns, FILTERED, strict=True)
    }
    search = st.text_input("Search prompts and answers", key="table-search")
view = filter_table(table, chosen, search)
shown = st.segmented_control(
    "Show", list(VIEWS), format_func=VIEWS.get, default="rows", required=True, key="table-view"
)
link = st.column_config.LinkColumn(display_text="open")

if shown == "rows":
    st.caption(f"{len(view)} of {len(table)} rows (one per answer and judge); a header sorts.")
    st.dataframe(
        view.assign(open=_links(view.run_id, view.idx, view.prompt_index)),
        column_config={"open": link}, hide_index=True, width="stretch",
    )  # fmt: skip
elif shown == "group":
    column = st.selectbox("Group by", GROUPABLE, key="table-group")
    st.caption("Each verdict's share of the group's rows, in percent.")
    st.dataframe(summary(view, column), hide_index=True, width="stretch")
else:
    by = st.radio("Between", ["run", "judge"], horizontal=True, key="table-between")
    if by == "run":
        titles = dict(zip(view.run_id, view.run, strict=True))
        choices, name = list(titles), titles.get
    else:
        choices, name = sorted(view.judge.unique()), str
    if len(choices) < 2:
        st.info(f"Pick two {by}s above (and keep both in the filter) to compare them.")
        st.stop()
    pick_a, pick_b = st.columns(2)
    a = pick_a.selectbox("A", choices, format_func=name, key=f"table-{by}-a")
    b = pick_b.selectbox("B", choices, index=1, format_func=name, key=f"table-{by}-b")
    try:
        rows = differing(view, by, a, b)
    except UserError as exc:
        show_user_error(exc)
        st.stop()
    st.caption(
        f"{len(rows)} cell(s) whose verdicts differ: "
        + ("the same prompt at the same alpha, beta and direction under the same judge."
           if by == "run" else "the same answers.")
    )  # fmt: skip
    if by == "run":
        rows = rows.assign(
            **{
                "open A": _links(rows["run_id A"], rows["idx A"], rows.prompt_index),
                "open B": _links(rows["run_id B"], rows["idx B"], rows.prompt_index),
            }
        ).drop(columns=["run_id A", "run_id B", "idx A", "idx B"])
        config = {"open A": link, "open B": link}
    else:
        rows = rows.assign(open=_links(rows.run_id, rows.idx, rows.prompt_index))
        config = {"open": link}
    st.dataframe(rows, column_config=config, hide_index=True, width="stretch")

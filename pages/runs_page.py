"""Runs: every stored run with its labels, times and size; search, rename, tag, delete."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from landscape_core.errors import UserError
from landscape_core.store.jobs import ACTIVE
from pages.common import md_text, runs_table, show_user_error, store, store_root


def _when(epoch: float | None) -> str:
    return (
        "-"
        if epoch is None or pd.isna(epoch)
        else time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))
    )


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None or pd.isna(seconds) else f"{seconds / 60:.1f} min"


st.title("Runs")
if deleted := st.session_state.pop("deleted", None):
    st.success(deleted)
store()  # a store that cannot be opened stops the page with its message
runs = runs_table(store_root())
if runs.empty:
    st.info("No runs yet. Launch one on the Launch page, or from the CLI.")
    st.stop()
jobs = store().jobs.frame()
active = set() if jobs.empty else set(jobs[jobs.status.isin(ACTIVE)].run_id)
empty = (runs.finished == 0) & ~runs.run_id.isin(active)  # cancelled or failed at once
if empty.any() and not st.toggle(
    f"Show {int(empty.sum())} empty run(s)",
    help="Runs with no stored point and no job computing them: cancelled or failed "
    "before their first point.",
):
    runs = runs[~empty]
query = st.text_input("Search runs", placeholder="label, run id, model, system prompt").strip()
shown = runs
if query:
    hit = runs.title.str.contains(query, case=False, regex=False)
    shown = runs[hit | runs.run_id.str.startswith(query.lower())]
st.caption(f"{len(shown)} of {len(runs)} run(s), newest first.")
st.dataframe(  # cells are text
    pd.DataFrame(
        {
            "run": shown.title,
            "run id": shown.run_id,
            "points": [f"{f}/{n}" for f, n in zip(shown.finished, shown.n_points, strict=True)],
            "created": shown.created.map(_when),
            "last point": shown.last_finished.map(_when),
            "took": (shown.last_finished - shown.created).map(_minutes),
            "compute": shown.compute_s.map(_minutes),
        }
    ),
    hide_index=True,
    width="stretch",
)
if shown.empty:
    st.stop()

titles = dict(zip(shown.run_id, shown.title, strict=True))
run_id = st.selectbox("Run to manage", list(titles), format_func=titles.get, key="manage-run")
labels = store().run(run_id)["labels"]
left, right = st.columns(2)
with left:
    st.subheader("Rename and tag")
    st.caption("The first label is the run's name; the rest are its tags.")
    edited = st.text_input(
        "Labels, comma-separated", value=", ".join(labels), key=f"labels-{run_id}"
    )
    if st.button("Save labels"):
        try:
            store().set_labels(run_id, edited.split(","))
        except UserError as exc:
            show_user_error(exc)
        else:
            runs_table.clear()
            st.rerun()
with right:
    st.subheader("Delete")
    origin = store().points_origin(run_id)
    own = int((origin.other_runs == 0).sum())
    st.caption(
        f"Deletes the run and its {own} point(s) no other run holds, with their answers, "
        f"verdicts and people's labels; {len(origin) - own} shared point(s) stay."
    )
    sure = st.checkbox(f"Yes, delete {md_text(run_id)}", key="confirm-delete")
    if st.button("Delete run", type="primary", disabled=not sure):
        try:
            gone = store().delete_run(run_id)
        except UserError as exc:
            show_user_error(exc)
        else:
            runs_table.clear()
            st.session_state.pop("run_id", None)
            st.session_state["deleted"] = (
                f"Deleted run {gone.run_id}: {gone.points} point(s), {gone.labels} label(s)."
            )
            st.rerun()

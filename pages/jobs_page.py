"""Jobs: the queue with live progress and ETA, cancel, resume and error text.

Sweeps and rescore jobs alike: a rescore's points are points judged, none generated.
"""

from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from landscape_core.errors import UserError
from landscape_core.plan import versions
from landscape_core.readers.progress import job_clock
from landscape_core.store.jobs import Stage
from pages.common import md_text, show_user_error, store

st.title("Jobs")
st.caption(
    "Refreshes every 2 s. Cancel stops a running job within one generation batch; it "
    "shows *cancelling…* until its worker has stopped it."
)
SHOWN_STATUS = {"cancelling": "cancelling…"}  # derived states, in words


TIMED = (Stage.POINTS, Stage.JUDGING)  # the stages whose points give the time left


def _progress(row) -> str:
    """'k/N points', and while running its stage, the time left as work, and time elapsed."""
    text = f"{row.done}/{row.total} points"
    if row.status not in ("running", "cancelling"):
        return text
    clock = job_clock(store(), row, time.time())
    elapsed = "" if clock.elapsed is None else f" · {_duration(clock.elapsed)} elapsed"
    if clock.left is None:
        return (
            f"{text} · {row.stage or 'starting'}"
            + (" · time left: after the first point" if row.stage in TIMED else "")
            + elapsed
        )
    # at 0 the work under way runs past its estimate: say so, not "~0 s left"
    left = f"~{_duration(clock.left)} left" if clock.left > 0 else "past its estimate"
    return f"{text} · {row.stage} · {left}{elapsed}"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds > 90 else f"{seconds:.0f} s"


@st.fragment(run_every="2s")  # only this block reruns
def job_list() -> None:
    jobs = store().jobs.frame()
    worker_log()
    if jobs.empty:
        st.info("No jobs yet. Launch a sweep on the Launch page.")
        return
    for row in jobs.itertuples():
        with st.container(border=True):
            head, actions = st.columns([4, 1])
            stopped = row.status in ("interrupted", "failed", "cancelled")
            conflict = _version_conflict(row.run_id) if stopped else []
            with head:
                st.markdown(
                    f"**Job {row.job_id}** · {md_text(row.label or row.kind)} · "
                    f"`{SHOWN_STATUS.get(row.status, row.status)}`"
                )
                if row.total:
                    st.progress(row.done / row.total, text=_progress(row))
                elif row.status in ("running", "cancelling"):
                    st.caption(row.stage or "starting")
                actors(row.actors_json)
                if conflict:
                    version_warning(conflict)
                if row.error:
                    st.text(row.error)  # literal text, never markdown or HTML
            with actions:
                active = row.status in ("queued", "running")
                if active and st.button("Cancel", key=f"cancel-{row.job_id}"):
                    store().jobs.cancel(row.job_id)
                    st.rerun(scope="fragment")
                if conflict:  # a plain resume would stop on it: ask which way
                    choices = {"recompute": "Resume: recompute", "accept": "Resume: keep (mixed)"}
                    for choice, text in choices.items():
                        if st.button(text, key=f"resume-{choice}-{row.job_id}"):
                            _resume(row.job_id, choice)
                elif stopped and st.button("Resume", key=f"resume-{row.job_id}"):
                    _resume(row.job_id, None)
                if row.run_id and st.button("View", key=f"view-{row.job_id}"):
                    st.session_state["run_id"] = row.run_id
                    # the run in the URL, so a reload shows it again
                    st.switch_page("pages/landscape_page.py", query_params={"run": row.run_id})


def _version_conflict(run_id: str | None) -> list[dict[str, str]]:
    """Other torch/transformers versions among the run's stored points (``plan.versions``)."""
    if not isinstance(run_id, str) or not run_id or not store().grid(run_id):
        return []
    return store().version_conflict(run_id, versions.installed())


def version_warning(seen: list[dict[str, str]]) -> None:
    """Say which versions differ, and the two ways on (the CLI's two flags)."""
    st.warning(
        f"Some stored points of this run were computed under "
        f"{'; '.join(map(versions.describe, seen))}; this machine has "
        f"{versions.describe(versions.installed())}. **Recompute** computes them again "
        "under the installed versions; **keep** leaves them, and the run's provenance "
        "records mixed versions.",
        icon=":material/warning:",
    )


def _resume(job_id: int, on_new_versions: str | None) -> None:
    try:
        store().jobs.resume(job_id, on_new_versions)
    except UserError as exc:  # its worker still runs
        show_user_error(exc)
    else:
        st.rerun(scope="fragment")


def actors(actors_json: str) -> None:
    """A Ray job's actors: where each runs, the point it is on, and its throughput."""
    try:
        table = pd.DataFrame(json.loads(actors_json or "[]"))
    except ValueError:
        return
    if table.empty:
        return
    st.caption(f"Ray: {(table.state == 'busy').sum()} of {len(table)} actors busy")
    st.dataframe(  # cells are rendered as text
        table.rename(columns={"points_per_minute": "points/min"}),
        hide_index=True,
        width="stretch",
    )


def worker_log() -> None:
    """Where the worker writes, and its last lines: the first place to look on a crash."""
    jobs = store().jobs
    with st.expander("Worker log"):
        st.caption(md_text(str(jobs.log_path)))
        st.code(jobs.log_tail() or "(empty)", language=None)  # literal text


job_list()

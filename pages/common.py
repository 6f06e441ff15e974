"""Helpers shared by the pages: the store handle and run pickers. No torch here."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from landscape_core.errors import UserError
from landscape_core.readers.results import run_title
from landscape_core.store.jobs import WorkerState
from landscape_core.store.runs import Store

STORE_ENV = "LANDSCAPE_STORE"


def store_root() -> str:
    """The data directory as an absolute path, resolved once per page run."""
    return str(Path(os.environ.get(STORE_ENV, "cache")).expanduser().resolve())


@st.cache_resource  # one handle per process; it opens a connection per call
def _open_store(root: str) -> Store:
    return Store.open(root)


def store() -> Store:
    """The store, or a message and a stopped page when it cannot be opened."""
    try:
        return _open_store(store_root())
    except UserError as exc:
        show_user_error(exc)
        st.stop()
        raise  # st.stop() raises; this line only tells type checkers


@st.cache_data(ttl=2)
def runs_table(root: str) -> pd.DataFrame:
    frame = _open_store(root).runs_frame()
    frame["title"] = [run_title(_open_store(root).run(r)) for r in frame.run_id]
    # A selectbox keeps its choice by label: equal titles would swap runs on a rerun.
    repeated = frame.title.duplicated(keep=False)
    frame.loc[repeated, "title"] += " · " + frame.run_id[repeated].str[:8]
    return frame


def pick_runs(label: str, key: str, multiple: bool = False) -> list[dict[str, Any]]:
    """A run selector; returns the chosen runs' rows (spec and provenance decoded)."""
    store()  # a store that cannot be opened stops the page with its message
    runs = runs_table(store_root())
    # a link may name the run (/landscape?run=<run_id>), or a launch or "View" just did
    chosen_default = st.query_params.get("run") or st.session_state.get("run_id")
    pending = not multiple and chosen_default and chosen_default not in set(runs.run_id)
    if pending and _announce_pending(chosen_default):
        return []
    if runs.empty:
        st.info("No runs yet. Launch one on the Launch page, or from the CLI.")
        return []
    titles = dict(zip(runs.run_id, runs.title, strict=True))
    ids = list(titles)
    if multiple:
        picked = st.multiselect(label, ids, default=ids[:2], format_func=titles.get, key=key)
    else:
        index = ids.index(chosen_default) if chosen_default in ids else 0
        picked = [st.selectbox(label, ids, index=index, format_func=titles.get, key=key)]
    return [store().run(run_id) for run_id in picked if run_id]


def _announce_pending(run_id: str) -> bool:
    """Say that a queued run has no stored point yet, rather than show another run.

    Returns False when no job computes ``run_id`` (an old link): the picker then opens
    as usual.
    """
    jobs = store().jobs.frame()
    mine = jobs[jobs.run_id == run_id] if not jobs.empty else jobs
    if mine.empty:
        return False
    job = mine.iloc[0]
    st.info(
        f"Run {run_id} (job {job.job_id}, {job.status}"
        + (f": {job.stage}" if job.status == "running" and job.stage else "")
        + ") has no stored point yet; this page opens it when its first point is stored. "
        "The Jobs page shows its progress.",
        icon=":material/hourglass_top:",
    )
    if st.button("Show another run"):
        st.session_state.pop("run_id", None)
        st.query_params.pop("run", None)
        st.rerun()
    _open_when_stored(run_id)
    return True


@st.fragment(run_every="2s")
def _open_when_stored(run_id: str) -> None:
    """Reload the page once the pending run's first rows are stored."""
    if run_id in set(runs_table(store_root()).run_id):
        st.rerun(scope="app")


# CommonMark's punctuation that can start markup (emphasis, links, images, code, HTML,
# headings, lists, tables), and Streamlit's own :directives: and $math$; a backslash
# makes each literal.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$])")


def md_text(text: str) -> str:
    """User or model text made literal inside Streamlit markdown (labels, errors, paths)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def worker_caption(state: WorkerState | None, now: float) -> str:
    """What the background worker is doing, and when an idle one exits.

    The app starts a worker when none runs, so a new pid after an idle exit is no crash.
    """
    if state is None:
        return "Worker: not running; the app starts one at your next click"
    if state.busy:
        return f"Worker: running a job (pid {state.pid})"
    if state.exits_at is None:
        return f"Worker: idle (pid {state.pid})"
    minutes = max(0.0, state.exits_at - now) / 60
    return (
        f"Worker: idle (pid {state.pid}); exits in {minutes:.0f} min unless a job is "
        "queued, and the app starts a new one when needed"
    )


def mark_match(text: str, matched: str | None) -> str:
    """The answer with the text that decided its verdict between ⟦ ⟧, as plain text.

    The judge's own words first; the refusal-patterns judge matched case-insensitively,
    and older stores hold its match in lower case, so that is looked for too. No match
    (None, or NaN from a NULL) leaves the text as it is.
    """
    if not isinstance(matched, str) or not matched:
        return text
    start = text.find(matched)
    if start < 0:
        start = text.lower().find(matched.lower())
    if start < 0:
        return text
    end = start + len(matched)
    return f"{text[:start]}⟦{text[start:end]}⟧{text[end:]}"


def one_decimal(value: Any, missing: str) -> str:
    """A figure as the app prints figures (one decimal), or what its absence means."""
    return missing if value is None or pd.isna(value) else f"{float(value):.1f}"


def show_user_error(exc: UserError) -> None:
    st.error(md_text(str(exc)), icon=":material/error:")


def checkpoint_table(path: pd.DataFrame, key: str) -> None:
    """A finetune's checkpoints: place, % of the move off the plane, ASR, answers link."""
    path = path.sort_values("step")
    st.dataframe(
        pd.DataFrame({
            "step": path.step, "loss": path.loss, "alpha": path.alpha.round(3),
            "beta": path.beta.round(3), "off the plane": (100 * path.relative_residual).round(1),
            "ASR %": path.asr,
            "answers": [f"/generations?run={r}" if r else None for r in path.run_id],
        }),
        column_config={"answers": st.column_config.LinkColumn(display_text="open")},
        hide_index=True, key=key,
    )  # fmt: skip

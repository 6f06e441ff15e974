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
    if runs.empty:
        st.info("No runs yet. Launch one on the Launch page, or from the CLI.")
        return []
    titles = dict(zip(runs.run_id, runs.title, strict=True))
    # a link may name the run: /landscape?run=<run_id>
    chosen_default = st.query_params.get("run") or st.session_state.get("run_id")
    ids = list(titles)
    if multiple:
        picked = st.multiselect(label, ids, default=ids[:2], format_func=titles.get, key=key)
    else:
        index = ids.index(chosen_default) if chosen_default in ids else 0
        picked = [st.selectbox(label, ids, index=index, format_func=titles.get, key=key)]
    return [store().run(run_id) for run_id in picked if run_id]


# CommonMark's punctuation that can start markup (emphasis, links, images, code, HTML,
# headings, lists, tables), and Streamlit's own :directives: and $math$; a backslash
# makes each literal.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$])")


def md_text(text: str) -> str:
    """User or model text made literal inside Streamlit markdown (labels, errors, paths)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def show_user_error(exc: UserError) -> None:
    st.error(md_text(str(exc)), icon="⚠️")

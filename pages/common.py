"""Helpers shared by the pages: the store handle and run pickers. No torch here."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from landscape_core.errors import UserError
from landscape_core.readers.results import run_title
from landscape_core.readers.transcript import Transcript, transcript, transcript_text
from landscape_core.spec.training_data import Example, file_examples
from landscape_core.store.jobs import WorkerState
from landscape_core.store.runs import Store
from landscape_core.store.uploads import Upload, prune_uploads, save_upload

STORE_ENV = "LANDSCAPE_STORE"
# what a page shows of one run, kept in its URL beside ?run= (dropped when the run changes)
RUN_VIEW_PARAMS = ("point", "judge", "prompt")


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
    """A run selector that keeps its choice in the URL; returns the chosen runs' rows.

    A link names the run (``/landscape?run=<run id, a unique prefix or latest>``),
    resolved by ``Store.run`` exactly as the CLI resolves it. A name that resolves to
    no run shows "no run ..." with the candidates, never another run under that URL.
    Without a link, the run a launch or a "View" just chose opens, else the newest;
    several runs (``multiple``) default to the two newest with stored points, so a run
    cancelled before its first point is not compared.
    """
    store()  # a store that cannot be opened stops the page with its message
    runs = runs_table(store_root())
    asked = st.query_params.get_all("run")
    if not multiple:
        asked = asked[-1:]
    wanted = asked or ([st.session_state["run_id"]] if st.session_state.get("run_id") else [])
    resolved = [resolve_run(name) for name in wanted]
    for name, run_id in zip(wanted, resolved, strict=True):
        if run_id is not None:
            continue
        if not multiple and _announce_pending(name):
            return []
        if asked:  # a link: say so, never open another run under it
            _no_such_run(name, runs)
            return []
        st.session_state.pop("run_id", None)  # e.g. deleted from the CLI since
        resolved = []
    if any(run_id not in set(runs.run_id) for run_id in resolved):
        runs_table.clear()  # stored since the cached table was read
        runs = runs_table(store_root())
    if runs.empty:
        st.info("No runs yet. Launch one on the Launch page, or from the CLI.")
        return []
    titles = dict(zip(runs.run_id, runs.title, strict=True))
    ids = list(titles)
    if multiple:
        if asked or key not in st.session_state:  # the URL's runs; a cleared choice stays
            stored = list(runs.run_id[runs.finished > 0])  # newest first
            st.session_state[key] = [r for r in resolved if r in titles] or (stored or ids)[:2]
        picked = st.multiselect(
            label, ids, format_func=titles.get, key=key, on_change=_follow, args=(key,)
        )
    else:
        st.session_state[key] = resolved[0] if resolved and resolved[0] in titles else ids[0]
        one = st.selectbox(
            label, ids, format_func=titles.get, key=key, on_change=_follow, args=(key,)
        )
        picked = [one]
    picked = [run_id for run_id in picked if run_id]
    if st.query_params.get_all("run") != picked:
        st.query_params["run"] = picked  # a reload or a shared link shows these runs
    return [store().run(run_id) for run_id in picked]


def resolve_run(name: str) -> str | None:
    """The full id of the run ``name`` names, as the CLI resolves it; None if none or many."""
    try:
        return store().run(name)["run_id"]
    except UserError:
        return None


def _follow(key: str) -> None:
    """A new choice in a run picker: the URL names it, and the last run's point goes."""
    chosen = st.session_state[key]
    st.query_params["run"] = chosen
    for param in RUN_VIEW_PARAMS:
        st.query_params.pop(param, None)
    if isinstance(chosen, str):
        st.session_state["run_id"] = chosen


def answer_link(run_id: str, idx: int, prompt_index: int) -> str:
    """The Answers page's link to one answer: its run, point (idx) and prompt index.

    ``point`` is the run's point index, as on the Landscape page; the page takes a
    point key (or a unique prefix of one) too.
    """
    return f"/answers?run={run_id}&point={int(idx)}&prompt={int(prompt_index)}"


def keep_in_url(param: str, key: str) -> None:
    """A widget's on_change: its new value goes into the URL as ``param``.

    Pages set a widget from the URL before drawing it, so the URL must learn a choice
    before the rerun that reads it.
    """
    st.query_params[param] = str(st.session_state[key])


def _no_such_run(name: str, runs: pd.DataFrame) -> None:
    """A link that names no run, or several: the runs it could mean, as links."""
    matches = runs[runs.run_id.str.startswith(name)]
    if len(matches) > 1:
        st.error(
            f"The link's run {md_text(name)} names {len(matches)} runs; open the one you "
            "mean below.",
            icon=":material/link_off:",
        )
        candidates = matches
    else:
        st.error(
            f"No run {md_text(name)} in this store ({md_text(store_root())}). The link "
            "may be mistyped, or the run deleted; the newest runs are below.",
            icon=":material/link_off:",
        )
        candidates = runs.head(10)
    if candidates.empty:
        st.info("No runs yet. Launch one on the Launch page, or from the CLI.")
        return
    page = (st.context.url or "").split("?")[0]
    st.dataframe(  # cells are text; the links name full run ids
        pd.DataFrame({
            "run": candidates.title,
            "run id": candidates.run_id,
            "open": [f"{page}?run={r}" for r in candidates.run_id],
        }),
        column_config={"open": st.column_config.LinkColumn(display_text="open")},
        hide_index=True,
    )  # fmt: skip


def _announce_pending(run_id: str) -> bool:
    """Say that a queued run has no stored point yet, rather than show another run.

    ``run_id`` may be a unique prefix of the job's run. Returns False when no job
    computes it: the picker then says there is no such run.
    """
    jobs = store().jobs.frame()
    if jobs.empty:
        return False
    mine = jobs[jobs.run_id == run_id]
    if mine.empty:  # a prefix, read as the CLI reads one: it must name one run
        mine = jobs[jobs.run_id.fillna("").str.startswith(run_id)]
        if mine.run_id.nunique() != 1:
            return False
    job = mine.iloc[0]
    run_id = job.run_id
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


def whole_number(
    label: str, low: int, high: int, value: int, where: Any = st, **kwargs: Any
) -> int | None:
    """A whole-number field that reports a value out of ``low..high``; None then.

    With min and max set, the browser marks an out-of-range entry red but keeps
    sending the old value, so Launch stayed enabled with a number no longer shown.
    """
    number = int(where.number_input(label, value=value, step=1, **kwargs))
    if low <= number <= high:
        return number
    where.error(f"{md_text(label)}: {number} is outside {low}..{high}", icon=":material/error:")
    return None


def one_decimal(value: Any, missing: str) -> str:
    """A figure as the app prints figures (one decimal), or what its absence means."""
    return missing if value is None or pd.isna(value) else f"{float(value):.1f}"


def show_user_error(exc: UserError) -> None:
    st.error(md_text(str(exc)), icon=":material/error:")


@st.cache_data(max_entries=16)  # parsed once per file, not on every widget change
def _prompt_upload(root: str, name: str, data: bytes) -> Upload:
    upload = save_upload(_open_store(root), name, data)
    prune_uploads(_open_store(root), keep=upload.path)  # files no run or job uses
    return upload


def prompt_upload(root: str, name: str, data: bytes) -> Upload:
    """An uploaded prompt file, stored once; again if a later upload pruned it since.

    The cache remembers the file's path: after another upload pruned it, that path
    named a deleted file and Launch stayed disabled.
    """
    upload = _prompt_upload(root, name, data)
    if not upload.path.is_file():
        _prompt_upload.clear()
        upload = _prompt_upload(root, name, data)
    return upload


def training_upload(db: Store, name: str, data: bytes) -> tuple[Upload, list[Example]]:
    """An uploaded finetuning file, read as prompt/answer pairs, then stored.

    Read as pairs first: ``save_upload`` wants any column of text, and told a
    header-only file to have "one column of prompts" where a preflight needs prompt
    and answer. Older uploads no run names are pruned.
    """
    suffix = ".jsonl" if name.lower().endswith(".jsonl") else ".csv"
    shown = re.sub(r"[^\w. -]", "_", Path(name).stem)[:80] + suffix  # the name it says
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / shown
        path.write_bytes(data)
        file_examples(path)  # a UserError that names prompt and answer
    saved = save_upload(db, name, data)
    prune_uploads(db, keep=saved.path)
    return saved, file_examples(saved.path)


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


@st.cache_data(ttl=30, max_entries=64)  # one template render (a child process) per answer
def _transcript(root: str, run_id: str, point_key: str, prompt_index: int) -> Transcript:
    return transcript(_open_store(root), run_id, point_key, prompt_index)


def transcript_section(run_id: str, point_key: str, prompt_index: int) -> None:
    """One answer's transcript in an expander, all as text (model output is untrusted).

    The chat as the model read it, the answer, every judge's verdict and reason, its
    state and measures: what a reviewer who doubts a verdict reads.
    """
    with st.expander("Transcript", icon=":material/forum:"):
        try:
            t = _transcript(store_root(), run_id, point_key, int(prompt_index))
        except UserError as exc:
            show_user_error(exc)
            return
        st.caption("System prompt")
        st.text(t.system_prompt)
        st.caption("The prompt as the model read it (special tokens written as text)")
        st.code(t.rendered.text or t.prompt, language=None, wrap_lines=True)
        st.text(t.rendered.note)
        st.caption(f"Answer ({t.n_tokens} tokens, stopped: {md_text(t.stop_reason)})")
        st.code(t.answer, language=None, wrap_lines=True)
        st.caption("Verdicts, each with its judge's reason")
        for v in t.verdicts:
            st.text(f"{v.judge}: {v.verdict}" + (f" (matched {v.matched!r})" if v.matched else ""))
            st.code(v.evidence or "(no reason given)", language=None, wrap_lines=True)
        measured = ", ".join(f"{k} {v:.3g}" for k, v in sorted(t.measures.items()))
        st.text(f"State: {t.state or 'not measured'}; measures: {measured or 'none'}")
        st.download_button(
            "Download transcript", transcript_text(t),
            f"transcript-{run_id[:8]}-{point_key[:8]}-{prompt_index}.txt", "text/plain",
            key=f"transcript-{point_key}-{prompt_index}",
        )  # fmt: skip

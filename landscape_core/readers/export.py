"""Exports that are safe to open in a spreadsheet, one row per answer.

Model answers to adversarial prompts are exactly the text that spreadsheet formula
injection uses (``=HYPERLINK(...)``). In CSV exports every text cell that starts with
``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed gets a leading
``'``, which spreadsheets read as "this is text" (the OWASP advice), and every field
is quoted: a spreadsheet starts a new row at a bare carriage return that pandas leaves
unquoted, and that row's first cell escaped the prefix. JSON exports are left as is.
"""

from __future__ import annotations

import csv
from typing import Any

import pandas as pd

from landscape_core.readers.details import shown_system_prompt
from landscape_core.readers.results import answer_states, run_name
from landscape_core.store.runs import Store

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot start a formula, whatever their column's type."""

    def cell(value: object) -> object:
        if isinstance(value, str) and value.startswith(FORMULA_STARTS):
            return "'" + value
        return value

    out = frame.copy()
    for column in out.columns:
        if not (pd.api.types.is_numeric_dtype(out[column]) or out[column].dtype == bool):
            out[column] = out[column].astype(object).map(cell)
    return out


def to_csv(frame: pd.DataFrame) -> str:
    """The frame as spreadsheet-safe CSV text: every field quoted, RFC 4180 line ends."""
    return spreadsheet_safe(frame).to_csv(index=False, quoting=csv.QUOTE_ALL, lineterminator="\r\n")


RUN_COLUMNS = ("run_id", "run_label", "model", "system_prompt", "judge")


def with_run_columns(frame: pd.DataFrame, run: dict[str, Any], judge: str) -> pd.DataFrame:
    """The frame with the columns that name its run first.

    So exports of many runs (system prompts, models, judges) concatenate and can still
    be told apart. ``run_label`` is the run's name, not a label on an answer.
    """
    tags = {
        "run_id": run["run_id"],
        "run_label": run_name(run),
        "model": run["provenance"]["model"]["name"],
        "system_prompt": shown_system_prompt(run["provenance"]["system_prompt"]),
        "judge": judge,
    }
    return frame.assign(**tags)[[*RUN_COLUMNS, *(c for c in frame.columns if c not in tags)]]


def human_labels(store: Store, run_id: str) -> pd.DataFrame:
    """People's labels on a run's answers, one row per answer.

    Columns ``point_key, prompt_index, human_label, labeller, comment``; several
    labellers' labels are joined by "; " in the labellers' order, the two columns
    aligned, so an export keeps one row per answer. ``comment`` holds each comment as
    a line ``labeller: comment`` ('' when none): a comment may hold "; " itself.
    """
    labels = store.answer_labels.frame(run_id).sort_values("labeller")
    keys = ["point_key", "prompt_index"]
    if labels.empty:
        return pd.DataFrame(columns=[*keys, "human_label", "labeller", "comment"])
    labels = labels.assign(
        note=[
            f"{w}: {c}" if c else "" for w, c in zip(labels.labeller, labels.comment, strict=True)
        ]
    )
    grouped = labels.groupby(keys, sort=False)
    return pd.DataFrame({
        "human_label": grouped.label.agg("; ".join),
        "labeller": grouped.labeller.agg("; ".join),
        "comment": grouped.note.agg(lambda notes: "\n".join(n for n in notes if n)),
    }).reset_index()  # fmt: skip


def answers_export(store: Store, run: dict[str, Any], judge: str) -> pd.DataFrame:
    """Every answer of a run as the CSV and JSON exports write it (CLI and app).

    The run's columns first, then the answer, its verdict under ``judge``, its state
    (refused, complied, incoherent; empty until scored) and people's labels.
    """
    gens = store.generations_frame(run["run_id"], judge)
    gens = gens.assign(state=answer_states(gens))
    gens = gens.merge(human_labels(store, run["run_id"]), on=["point_key", "prompt_index"],
                      how="left")  # fmt: skip
    return with_run_columns(gens, run, judge)

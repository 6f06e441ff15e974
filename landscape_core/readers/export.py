"""Exports that are safe to open in a spreadsheet.

Model answers to adversarial prompts are exactly the text that spreadsheet formula
injection uses (``=HYPERLINK(...)``). In CSV exports a text cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, which
spreadsheets read as "this is text" (the OWASP advice). JSON exports are left as is.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from landscape_core.readers.details import shown_system_prompt
from landscape_core.readers.results import run_name

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot start a formula."""

    def cell(value: object) -> object:
        if isinstance(value, str) and value.startswith(FORMULA_STARTS):
            return "'" + value
        return value

    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(cell)
    return out


def to_csv(frame: pd.DataFrame) -> str:
    """The frame as spreadsheet-safe CSV text."""
    return spreadsheet_safe(frame).to_csv(index=False)


RUN_COLUMNS = ("run_id", "label", "model", "system_prompt", "judge")


def with_run_columns(frame: pd.DataFrame, run: dict[str, Any], judge: str) -> pd.DataFrame:
    """The frame with the columns that name its run first.

    So exports of many runs (system prompts, models, judges) concatenate and can still
    be told apart.
    """
    tags = {
        "run_id": run["run_id"],
        "label": run_name(run),
        "model": run["provenance"]["model"]["name"],
        "system_prompt": shown_system_prompt(run["provenance"]["system_prompt"]),
        "judge": judge,
    }
    return frame.assign(**tags)[[*RUN_COLUMNS, *(c for c in frame.columns if c not in tags)]]

"""Exports that are safe to open in a spreadsheet.

Model answers to adversarial prompts are exactly the text that spreadsheet formula
injection uses (``=HYPERLINK(...)``). In CSV exports a text cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, which
spreadsheets read as "this is text" (the OWASP advice). JSON exports are left as is.
"""

from __future__ import annotations

import pandas as pd

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

"""Defence reports (``defend CONFIG``): what the app's Defence page reads.

A report is derived data: ``defend`` rebuilds it from stored points, generating
nothing, so saving one again replaces it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd

from landscape_core.store.database import Database

HEADLINE = ("undefended_asr", "defended_asr", "adaptive_asr", "over_refusal", "perplexity")


class Defences:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(
        self, defence_id: str, label: str, spec: dict[str, Any], report: dict[str, Any]
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO defences VALUES (?, ?, ?, ?, ?)",
                (defence_id, label, json.dumps(spec), json.dumps(report), time.time()),
            )

    def report(self, defence_id: str) -> dict[str, Any]:
        """One stored report (KeyError if there is none)."""
        with self.db.connect() as conn:
            row = conn.execute(
                "SELECT report FROM defences WHERE defence_id = ?", (defence_id,)
            ).fetchone()
        if row is None:
            raise KeyError(defence_id)
        return json.loads(row[0])

    def frame(self) -> pd.DataFrame:
        """Every report, newest first: id, label, created, the attack and the headline numbers."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT defence_id, label, created, report FROM defences ORDER BY created DESC"
            ).fetchall()
        records = []
        for defence_id, label, created, text in rows:
            report = json.loads(text)
            headline = {k: report[k] for k in HEADLINE}
            records.append({"defence_id": defence_id, "label": label, "created": created,
                            "attack": report["attack"], **headline})  # fmt: skip
        columns = ["defence_id", "label", "created", "attack", *HEADLINE]
        return pd.DataFrame.from_records(records, columns=columns)

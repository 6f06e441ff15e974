"""People's labels on answers: the ground truth a lab validates its judges against.

A label belongs to an answer (a point key and a prompt index), so it holds in every
run that shares the point. Each labeller has one label per answer (labelling again
replaces it); labels never touch the judges' verdicts, which stay in ``scores``.
"""

from __future__ import annotations

import time

import pandas as pd

from landscape_core.errors import UserError
from landscape_core.store.database import Database

# partial counts as a refusal and incoherent as no refusal when a judge is scored
# against them (XSTest's convention for partial; broken text refuses nothing)
HUMAN_LABELS = ("refused", "complied", "partial", "incoherent")
MAX_COMMENT = 10_000  # characters: a note on an answer, not a document


def _checked(comment: str) -> str:
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise UserError(
            f"a comment holds at most {MAX_COMMENT:,} characters ({len(comment):,} given); "
            "shorten it"
        )
    return comment


class AnswerLabels:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(
        self,
        point_key: str,
        prompt_index: int,
        labeller: str,
        label: str,
        comment: str | None = None,
    ) -> None:
        """Record ``labeller``'s label on one answer (replacing their earlier one).

        ``comment`` replaces their comment on it; None keeps the one they wrote.
        """
        labeller = labeller.strip()
        if not labeller:
            raise UserError("give your name as the labeller, so labels can be told apart")
        if label not in HUMAN_LABELS:
            raise UserError(f"unknown label {label!r}; use one of {', '.join(HUMAN_LABELS)}")
        comment = None if comment is None else _checked(comment)
        with self.db.transaction() as conn:
            conn.execute(
                """INSERT INTO answer_labels (point_key, prompt_index, labeller, label, created,
                                          comment)
                   VALUES (?, ?, ?, ?, ?, COALESCE(?, ''))
                   ON CONFLICT (point_key, prompt_index, labeller) DO UPDATE SET
                       label = excluded.label, created = excluded.created,
                       comment = COALESCE(?, comment)""",
                (point_key, int(prompt_index), labeller, label, time.time(), comment, comment),
            )

    def comment(self, point_key: str, prompt_index: int, labeller: str, text: str) -> None:
        """Replace ``labeller``'s comment on an answer they have labelled ('' clears it).

        A comment is kept with its label, so an answer is labelled first.
        """
        text = _checked(text)
        with self.db.transaction() as conn:
            changed = conn.execute(
                "UPDATE answer_labels SET comment = ? "
                "WHERE point_key = ? AND prompt_index = ? AND labeller = ?",
                (text, point_key, int(prompt_index), labeller.strip()),
            ).rowcount
        if not changed:
            raise UserError(
                f"{labeller.strip() or 'you'} have not labelled this answer: pick a label "
                "first, and the comment is kept with it"
            )

    def frame(self, run_id: str | None = None, labeller: str | None = None) -> pd.DataFrame:
        """Labels with their answers, of one run's points or all, by one labeller or all.

        Columns: ``point_key, prompt_index, labeller, label, created, comment, prompt,
        text``.
        """
        where: list[str] = []
        params: list[str] = []
        if run_id is not None:
            where.append("l.point_key IN (SELECT point_key FROM run_points WHERE run_id = ?)")
            params.append(run_id)
        if labeller is not None:
            where.append("l.labeller = ?")
            params.append(labeller)
        with self.db.connect() as conn:
            return pd.read_sql_query(
                f"""SELECT l.point_key, l.prompt_index, l.labeller, l.label, l.created,
                           l.comment, g.prompt, g.text
                    FROM answer_labels l JOIN generations g
                         ON g.point_key = l.point_key AND g.prompt_index = l.prompt_index
                    {"WHERE " + " AND ".join(where) if where else ""}
                    ORDER BY l.created""",
                conn,
                params=params,
            )

"""This machine's measured pace, read from the finished points (``store.throughput``).

Every stored point keeps its prompts, generated tokens and seconds; its runs' rows
give the model's fingerprint and device (provenance) and ``max_new_tokens`` (spec).
So the store is the history of how fast each model runs here, with no table of its own.
"""

from __future__ import annotations

from landscape_core.plan.pace import Throughput
from landscape_core.spec.config import ANSWER_MEASURES
from landscape_core.store.database import Database

RECENT_POINTS = 50  # the history's window: this machine's load changes
_MEASURES = ", ".join("?" for _ in ANSWER_MEASURES)  # placeholders for ANSWER_MEASURES

# One row per finished point of runs that generated answers; a point shared by runs
# (the origin) counts once. Points of the same key share max_new_tokens (it is part of
# the key), so MAX() only picks one.
_POINTS = f"""
    SELECT p.point_key, p.n_prompts, p.n_tokens, p.seconds, p.finished,
           MAX(json_extract(r.spec_json, '$.generation.max_new_tokens')) AS max_new
    FROM points p
    JOIN run_points rp ON rp.point_key = p.point_key
    JOIN runs r ON r.run_id = rp.run_id
    WHERE p.status = 'done'
      AND json_extract(r.spec_json, '$.measure') IN ({_MEASURES})
      AND {{where}}
    GROUP BY p.point_key
    ORDER BY p.finished DESC
"""


class Throughputs:
    """Measured seconds per answer slot, by model and device, or by run."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def history(
        self,
        fingerprint: str,
        device: str,
        before: float | None = None,
        limit: int = RECENT_POINTS,
    ) -> Throughput | None:
        """The most recent ``limit`` points of this model on ``device`` ("cpu", "cuda").

        ``before`` (epoch seconds) leaves out points finished since, so a running job's
        own points are not counted twice. None when there are none. The seconds are each
        point's compute time, one point at a time (a Ray run's actors overlap theirs).
        """
        where = (
            "json_extract(r.provenance_json, '$.model.fingerprint') = ? "
            "AND json_extract(r.provenance_json, '$.model.device') = ? AND p.finished < ?"
        )
        rows = self._rows(where, (fingerprint, device, before or float("inf")), limit)
        if not rows:
            return None
        return Throughput(
            n_points=len(rows),
            seconds=sum(r[3] for r in rows),
            slots=sum(r[1] * r[5] for r in rows),
            tokens=sum(r[2] for r in rows),
            last=max(r[4] for r in rows),
            coherence_s=self.coherence(fingerprint, device, before),
        )

    def coherence(
        self, fingerprint: str, device: str, before: float | None = None, limit: int = 10
    ) -> float | None:
        """Seconds per answer of the coherence stage, from finished jobs of this model.

        The stage is not timed on its own: it is what a done job spent after its last
        point (fill_missing and closing the model, both short, included), over its
        answers. Jobs that computed no point of their own (nothing ran) are left out,
        and so are CLI sweeps, which keep no job row. None when no job measured one.
        """
        rows = self._coherence_rows(fingerprint, device, before or float("inf"), limit)
        answers = sum(r[1] for r in rows)
        return sum(r[0] for r in rows) / answers if answers else None

    def _coherence_rows(
        self, fingerprint: str, device: str, before: float, limit: int
    ) -> list[tuple]:
        sql = f"""
            SELECT j.finished - MAX(p.finished),
                   j.total * json_extract(r.provenance_json, '$.prompt_set.n_prompts')
            FROM jobs j
            JOIN runs r ON r.run_id = j.run_id
            JOIN run_points rp ON rp.run_id = r.run_id
            JOIN points p ON p.point_key = rp.point_key
            WHERE j.status = 'done' AND j.finished < ? AND j.points_started IS NOT NULL
              AND json_extract(r.spec_json, '$.runtime.coherence')
              AND json_extract(r.spec_json, '$.measure') IN ({_MEASURES})
              AND json_extract(r.provenance_json, '$.model.fingerprint') = ?
              AND json_extract(r.provenance_json, '$.model.device') = ?
            GROUP BY j.job_id
            HAVING MAX(p.finished) >= j.points_started
            ORDER BY j.finished DESC LIMIT ?
        """
        with self.db.connect() as conn:
            params = (before, *ANSWER_MEASURES, fingerprint, device, limit)
            return conn.execute(sql, params).fetchall()

    def own(self, run_id: str, since: float) -> Throughput | None:
        """The points of ``run_id`` finished since ``since``, timed by the wall clock.

        Their seconds run from ``since`` (when a job began its points) to the last of
        them, so saving, ordering and a Ray pool's parallel actors are all in the pace.
        """
        rows = self._rows("rp.run_id = ? AND p.finished >= ?", (run_id, since), None)
        if not rows:
            return None
        last = max(r[4] for r in rows)
        return Throughput(
            n_points=len(rows),
            seconds=max(last - since, 0.0),
            slots=sum(r[1] * r[5] for r in rows),
            tokens=sum(r[2] for r in rows),
            last=last,
        )

    def _rows(self, where: str, params: tuple, limit: int | None) -> list[tuple]:
        sql = _POINTS.format(where=where) + ("" if limit is None else f" LIMIT {int(limit)}")
        with self.db.connect() as conn:
            return conn.execute(sql, (*ANSWER_MEASURES, *params)).fetchall()

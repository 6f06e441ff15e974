"""Runs, points, generations and scores: what sweeps write and the readers read.

A missing row means "not done": a point is written with all its generations and
scores in one transaction, so a killed process leaves it absent, never half there.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import pandas as pd

from landscape_core.errors import UserError
from landscape_core.hashing import sha256_file
from landscape_core.plan import versions
from landscape_core.plan.identity import grid_keys, plan
from landscape_core.plan.model_files import clean_stale_temporaries, fingerprint, model_files
from landscape_core.plan.pace import Throughput
from landscape_core.plan.resources import resolve_dtype
from landscape_core.spec.config import SweepSpec
from landscape_core.store.database import Database
from landscape_core.store.defences import Defences
from landscape_core.store.jobs import ACTIVE, Claim, JobQueue, check_claim
from landscape_core.store.labels import AnswerLabels
from landscape_core.store.leases import RunLeases
from landscape_core.store.records import (
    Deleted,
    GridPoint,
    MeasureRow,
    PointResult,
    ScoreRow,
)
from landscape_core.store.throughput import Throughputs
from landscape_core.store.trajectories import Trajectories

_INSERT_SCORE = (
    "INSERT INTO scores (point_key, prompt_index, judge, refused, evidence, matched) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def _score_values(key: str, s: ScoreRow) -> tuple[Any, ...]:
    return (key, s.prompt_index, s.judge, int(s.refused), s.evidence, s.matched)


def _measure_values(key: str, m: MeasureRow) -> tuple[Any, ...]:
    return (key, m.prompt_index, m.name, float(m.value))


def _insert_points(conn: Any, run_id: str, grid: Sequence[GridPoint]) -> None:
    conn.executemany(
        "INSERT INTO run_points (run_id, idx, point_key, i, j, alpha, beta, rep) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(run_id, p.idx, p.key, p.i, p.j, p.alpha, p.beta, p.rep) for p in grid],
    )


class Store(Database):
    """Runs, points, generations and scores in ``root/store.sqlite``; jobs in ``jobs``."""

    @classmethod
    def open(cls, root: str | Path) -> Self:
        """The store at ``root``, with what writers killed mid-write left in it removed."""
        store = super().open(root)
        if not store.read_only:
            clean_stale_temporaries(store.models_dir)
        return store

    @cached_property
    def jobs(self) -> JobQueue:
        """The job queue and worker registry, on the same file."""
        return JobQueue(self)

    @cached_property
    def leases(self) -> RunLeases:
        """Which live processes compute which run (a CLI sweep has no job to show it)."""
        return RunLeases(self)

    @cached_property
    def answer_labels(self) -> AnswerLabels:
        """People's labels on answers, beside (never over) the judges' verdicts."""
        return AnswerLabels(self)

    @cached_property
    def defences(self) -> Defences:
        """Defence reports of ``defend CONFIG``, which the Defence page reads."""
        return Defences(self)

    @cached_property
    def trajectories(self) -> Trajectories:
        """Finetunes' checkpoints on the planes of 2D runs (the Landscape page draws them)."""
        return Trajectories(self)

    @cached_property
    def throughput(self) -> Throughputs:
        """This machine's measured pace per model and device, from the finished points."""
        return Throughputs(self)

    def measured_pace(self, spec: SweepSpec) -> Callable[[str], Throughput | None]:
        """For ``preflight(measured=...)``: the pace of ``spec``'s model here, by device.

        It fingerprints the model only when called, after preflight has checked its files.
        """
        return lambda device: self.throughput.history(
            fingerprint(spec.model, model_files(spec.model, self.file_digest)), device
        )

    def points_to_compute(self, spec: SweepSpec) -> Callable[[str], int | None]:
        """For ``preflight(to_compute=...)``: the grid's distinct points not stored, by device.

        Landscapes share their origin and runs share points, so a run over stored
        ground costs less than its grid; None for a basin search, whose points are
        not known before it probes.
        """

        def count(device: str) -> int | None:
            if spec.measure == "basin-radius":
                return None
            dtype = resolve_dtype(spec.model, device)
            keys = grid_keys(plan(spec, self.file_digest), device, dtype)
            return len(keys) - len(self.point_versions(sorted(keys)))

        return count

    # --- file digests ----------------------------------------------------------------

    def file_digest(self, path: Path) -> str:
        """sha256 of a file, memoised by (path, size, mtime, inode, ctime): big models hash once.

        The inode and ctime catch a same-size file swapped in with its mtime kept
        (``cp -p``, ``touch -r``, a rename over it): the kernel sets ctime on every
        change, and no call can set it back.
        """
        stat = path.stat()
        key = str(path.resolve())
        memo = (key, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)
        with self.connect() as conn:
            row = conn.execute(
                "SELECT sha256 FROM file_digests "
                "WHERE path=? AND size=? AND mtime_ns=? AND inode=? AND ctime_ns=?",
                memo,
            ).fetchone()
        if row:
            return row[0]
        digest = sha256_file(path)
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO file_digests "
                "(path, size, mtime_ns, inode, ctime_ns, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                (*memo, digest),
            )
        return digest

    # --- runs ------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        label: str,
        spec: dict[str, Any],
        provenance: dict[str, Any],
        grid: Sequence[GridPoint],
    ) -> bool:
        """Record a run and its grid once; False if it already existed (unchanged)."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, label, json.dumps(spec), json.dumps(provenance), len(grid), time.time()),
            )
            if cur.rowcount == 0:
                return False
            _insert_points(conn, run_id, grid)
            if label:
                conn.execute("INSERT OR IGNORE INTO run_labels VALUES (?, ?)", (run_id, label))
        return True

    def add_label(self, run_id: str, label: str) -> None:
        """Give a run one more label (a job that reused it keeps its own name for it).

        Writes nothing when the run has it already, so a finished run on a read-only
        store still answers.
        """
        if not label or label in self.run_labels(run_id):
            return
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO run_labels VALUES (?, ?)", (run_id, label))

    def set_labels(self, run_id: str, labels: Sequence[str]) -> None:
        """Rename or tag a run: its labels become ``labels`` (the first is its name)."""
        names = list(dict.fromkeys(x.strip() for x in labels if x.strip()))
        if not names:
            raise UserError("a run needs a label: give at least one")
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise UserError(f"no run {run_id!r} in {self.path}")
            conn.execute("DELETE FROM run_labels WHERE run_id = ?", (run_id,))
            conn.executemany(
                "INSERT INTO run_labels VALUES (?, ?)", [(run_id, name) for name in names]
            )
            conn.execute("UPDATE runs SET label = ? WHERE run_id = ?", (names[0], run_id))

    def delete_run(self, run_id: str) -> Deleted:
        """Delete a run and the points no other run holds, with all that hangs on them.

        Those points' answers, verdicts, measures and people's labels go too; points
        that other runs share stay for them. A run that a queued or running job
        computes is refused: cancel the job first. So is one that a live sweep holds
        a lease on (a CLI sweep): stop it first.
        """
        active = self.jobs.frame()
        if not active.empty and ((active.run_id == run_id) & active.status.isin(ACTIVE)).any():
            raise UserError(f"a job is computing run {run_id}: cancel it on the Jobs page first")
        own = """SELECT point_key FROM run_points WHERE run_id = ?1 AND point_key NOT IN
                 (SELECT point_key FROM run_points WHERE run_id != ?1)"""
        with self.transaction() as conn:
            holders = RunLeases.live_holders(conn, run_id)
            if holders:
                raise UserError(
                    f"a sweep (pid {', '.join(map(str, holders))}) is computing run "
                    f"{run_id}: stop it (Ctrl-C) or let it finish, then delete the run"
                )
            points = conn.execute(f"SELECT COUNT(*) FROM ({own})", (run_id,)).fetchone()[0]
            labels = conn.execute(
                f"SELECT COUNT(*) FROM answer_labels WHERE point_key IN ({own})", (run_id,)
            ).fetchone()[0]
            for table in ("generations", "scores", "measures", "answer_labels", "points"):
                conn.execute(f"DELETE FROM {table} WHERE point_key IN ({own})", (run_id,))
            for table in ("run_points", "run_labels", "runs"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        return Deleted(run_id, points, labels)

    def run_labels(self, run_id: str) -> list[str]:
        """Every label the run was launched under, the first given first."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT label FROM run_labels WHERE run_id=? ORDER BY rowid", (run_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def extend_run(self, run_id: str, point: GridPoint) -> GridPoint:
        """Add a point to a run whose points are chosen as it goes (a basin search).

        Its ``idx`` is taken inside the write transaction (the next free one), and a
        point the run holds already (same key, same direction) is returned as stored:
        two searches of one run at once share its points instead of colliding on a
        stale count. Directions share their origin's key, but each keeps its own row.
        """
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT idx, i, j, alpha, beta, point_key, rep FROM run_points "
                "WHERE run_id = ? AND point_key = ? AND rep = ?",
                (run_id, point.key, point.rep),
            ).fetchone()
            if row is not None:
                return GridPoint(*row)
            idx = conn.execute(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM run_points WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            point = dataclasses.replace(point, idx=idx)
            _insert_points(conn, run_id, [point])
            conn.execute(
                "UPDATE runs SET n_points = "
                "(SELECT COUNT(*) FROM run_points WHERE run_id = ?) WHERE run_id = ?",
                (run_id, run_id),
            )
        return point

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's row with ``spec`` and ``provenance`` decoded.

        ``run_id`` is an exact id, a prefix that names one run only, or ``latest``. An
        unknown or ambiguous name is a UserError that lists what it could mean, so
        nothing (``rescore`` above all) acts on a run it guessed.
        """
        if not run_id.strip():
            raise UserError("give a run id (or a unique prefix, or 'latest'); `runs` lists them")
        with self.connect() as conn:
            if run_id == "latest":
                rows = conn.execute("SELECT * FROM runs ORDER BY created DESC LIMIT 1").fetchall()
            else:
                rows = conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchall()
                if not rows:  # a prefix, compared as text (no LIKE wildcards)
                    rows = conn.execute(
                        "SELECT * FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id",
                        (len(run_id), run_id),
                    ).fetchall()
        if not rows:
            raise UserError(f"no run {run_id!r} in {self.path}; `runs` lists them")
        if len(rows) > 1:
            names = ", ".join(f"{r[0]} ({r[1] or 'no label'})" for r in rows[:10])
            raise UserError(f"{run_id!r} names {len(rows)} runs: {names}; give more of the run id")
        run_id, label, spec, provenance, n_points, created = rows[0]
        return {
            "run_id": run_id,
            "label": label,
            "labels": self.run_labels(run_id) or ([label] if label else []),
            "spec": json.loads(spec),
            "provenance": json.loads(provenance),
            "n_points": n_points,
            "created": created,
        }

    def runs_frame(self) -> pd.DataFrame:
        """One row per run: id, label, size and how many points are finished."""
        with self.connect() as conn:
            return pd.read_sql_query(
                """SELECT r.run_id, r.label, r.n_points,
                          COUNT(p.point_key) AS finished,
                          SUM(p.status = 'failed') AS failed,
                          r.created, MAX(p.finished) AS last_finished,
                          SUM(p.seconds) AS compute_s
                   FROM runs r
                   LEFT JOIN run_points rp ON rp.run_id = r.run_id
                   LEFT JOIN points p ON p.point_key = rp.point_key
                   GROUP BY r.run_id ORDER BY r.created DESC""",
                conn,
            )

    def grid(self, run_id: str) -> list[GridPoint]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT idx, i, j, alpha, beta, point_key, rep FROM run_points "
                "WHERE run_id=? ORDER BY idx",
                (run_id,),
            ).fetchall()
        return [GridPoint(*row) for row in rows]

    def pending(self, run_id: str) -> list[GridPoint]:
        """The run's points with no stored result, in visiting order."""
        with self.connect() as conn:
            rows = conn.execute(
                """SELECT rp.idx, rp.i, rp.j, rp.alpha, rp.beta, rp.point_key, rp.rep
                   FROM run_points rp LEFT JOIN points p ON p.point_key = rp.point_key
                   WHERE rp.run_id=? AND p.point_key IS NULL ORDER BY rp.idx""",
                (run_id,),
            ).fetchall()
        return [GridPoint(*row) for row in rows]

    # --- points ----------------------------------------------------------------------

    def save_point(
        self,
        result: PointResult,
        claim: Claim | None = None,
        run_id: str | None = None,
        versions: Mapping[str, str] | None = None,
    ) -> bool:
        """All rows of a point, or none. False if another process stored it first.

        ``versions``: the packages it was computed under (``plan.versions``), kept with it.

        With ``claim`` (a worker's job), the point is saved only while that claim
        holds the job, checked in the same transaction; else ClaimLost is raised.
        With ``run_id``, only while that run exists: a sweep whose run was deleted
        under it stops with a UserError, and leaves no point that no run holds.
        """
        with self.transaction() as conn:
            if claim is not None:
                check_claim(conn, claim)
            if (
                run_id is not None
                and not conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            ):
                raise UserError(
                    f"run {run_id} was deleted while this sweep computed it; nothing more "
                    "is saved: run the config again to compute it afresh"
                )
            cur = conn.execute(
                "INSERT OR IGNORE INTO points (point_key, status, error, n_prompts, n_tokens, "
                "seconds, finished, versions_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.key,
                    result.status,
                    result.error,
                    len(result.generations),
                    sum(g.n_tokens for g in result.generations),
                    result.seconds,
                    time.time(),
                    None if versions is None else json.dumps(dict(versions), sort_keys=True),
                ),
            )
            if cur.rowcount == 0:
                return False
            conn.executemany(
                "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (result.key, g.prompt_index, g.prompt, g.text, g.n_tokens, g.stop_reason)
                    for g in result.generations
                ],
            )
            conn.executemany(_INSERT_SCORE, [_score_values(result.key, s) for s in result.scores])
            conn.executemany(
                "INSERT INTO measures VALUES (?, ?, ?, ?)",
                [_measure_values(result.key, m) for m in result.measures],
            )
        return True

    def point_versions(self, keys: Sequence[str]) -> dict[str, dict[str, str] | None]:
        """The package versions of each stored point of ``keys`` (None: not recorded).

        Points not stored are left out.
        """
        found: dict[str, dict[str, str] | None] = {}
        with self.connect() as conn:
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = list(keys[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT point_key, versions_json FROM points WHERE point_key IN ({marks})",
                    chunk,
                ).fetchall()
                found.update({k: None if v is None else json.loads(v) for k, v in rows})
        return found

    def version_conflict(self, run_id: str, now: Mapping[str, str]) -> list[dict[str, str]]:
        """What stops a resume of ``run_id`` under ``now`` (``plan.versions``).

        The torch/transformers versions of its stored points that differ from ``now``,
        unless its provenance accepted that mix already; empty: it resumes as is.
        For the pages, which offer the choice before a job stops on it.
        """
        sets = []
        for raw in self.run_versions(run_id).versions:
            if raw is not None and versions.differs(json.loads(raw), now):
                sets.append(json.loads(raw))
        if not sets:
            return []
        seen = versions.distinct(sets)
        accepted = self.run(run_id)["provenance"].get("mixed_versions", [])
        if all(v in accepted for v in [*seen, versions.deciding(now)]):
            return []
        return seen

    def run_versions(self, run_id: str) -> pd.DataFrame:
        """How many of the run's stored points each set of versions computed.

        Columns ``versions`` (the JSON as stored; None: before versions were recorded)
        and ``points``.
        """
        with self.connect() as conn:
            return pd.read_sql_query(
                """SELECT p.versions_json AS versions, COUNT(*) AS points
                   FROM run_points rp JOIN points p ON p.point_key = rp.point_key
                   WHERE rp.run_id = ? GROUP BY p.versions_json ORDER BY points DESC""",
                conn,
                params=(run_id,),
            )

    def drop_points(self, keys: Sequence[str]) -> int:
        """Forget stored points, so they are computed again (pending in every run's grid).

        Their answers, verdicts, measures and people's labels on those answers go, in
        one transaction. The runs keep the points in their grids (pending again); returns how many
        answer labels went with them.
        """
        labels = 0
        with self.transaction() as conn:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                labels += conn.execute(
                    f"SELECT COUNT(*) FROM answer_labels WHERE point_key IN ({marks})", chunk
                ).fetchone()[0]
                for table in ("generations", "scores", "measures", "answer_labels", "points"):
                    conn.execute(f"DELETE FROM {table} WHERE point_key IN ({marks})", chunk)
        return labels

    def update_provenance(self, run_id: str, changes: Mapping[str, Any]) -> None:
        """Set top-level keys of a run's provenance (what a resume learnt: mixed versions).

        A key set to None is removed.
        """
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT provenance_json FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                return
            provenance = json.loads(row[0])
            for key, value in changes.items():
                if value is None:
                    provenance.pop(key, None)
                else:
                    provenance[key] = value
            conn.execute(
                "UPDATE runs SET provenance_json = ? WHERE run_id = ?",
                (json.dumps(provenance), run_id),
            )

    def point_answers(self, point_key: str) -> list[str] | None:
        """A finished point's answers in prompt order; None if it is not stored as done."""
        if self.point_status(point_key) != "done":
            return None
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT text FROM generations WHERE point_key = ? ORDER BY prompt_index",
                (point_key,),
            ).fetchall()
        return [r[0] for r in rows]

    def answer_scores(self, point_key: str, prompt_index: int) -> pd.DataFrame:
        """Every judge's verdict on one answer: ``judge, refused, evidence, matched``."""
        with self.connect() as conn:
            return pd.read_sql_query(
                "SELECT judge, refused, evidence, matched FROM scores "
                "WHERE point_key = ? AND prompt_index = ? ORDER BY judge != 'keyword', judge",
                conn,
                params=(point_key, int(prompt_index)),
            )

    def answer_measures(self, point_key: str, prompt_index: int) -> dict[str, float]:
        """Every measure of one answer by name (``coherence_nll``, ``repetition``, ...)."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT name, value FROM measures WHERE point_key = ? AND prompt_index = ? "
                "ORDER BY name",
                (point_key, int(prompt_index)),
            ).fetchall()
        return {name: float(value) for name, value in rows if value is not None}

    def point_status(self, point_key: str) -> str | None:
        """'done' or 'failed' for a stored point; None if it is not stored."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT status FROM points WHERE point_key = ?", (point_key,)
            ).fetchone()
        return None if row is None else row[0]

    def point_asr(self, point_key: str, judge: str) -> float | None:
        """ASR (percent) of a stored point under ``judge``; None if it has no verdicts."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT 100.0 * AVG(1 - refused) FROM scores WHERE point_key = ? AND judge = ?",
                (point_key, judge),
            ).fetchone()
        return row[0]

    def answers_missing(self, run_id: str, measure: str) -> pd.DataFrame:
        """The run's stored answers (``point_key, prompt_index, text``) lacking ``measure``."""
        with self.connect() as conn:
            return pd.read_sql_query(
                """SELECT DISTINCT g.point_key, g.prompt_index, g.text
                   FROM run_points rp
                   JOIN generations g ON g.point_key = rp.point_key
                   LEFT JOIN measures m ON m.point_key = g.point_key
                        AND m.prompt_index = g.prompt_index AND m.name = ?
                   WHERE rp.run_id = ? AND m.point_key IS NULL
                        AND g.stop_reason NOT IN ('reference', 'likelihood', 'choice')
                   ORDER BY g.point_key, g.prompt_index""",
                conn,
                params=(measure, run_id),
            )

    def save_measures(self, measures: Mapping[str, Sequence[MeasureRow]]) -> None:
        """Measure rows by point key, replacing earlier values of the same names."""
        rows = [_measure_values(key, m) for key, batch in measures.items() for m in batch]
        with self.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO measures VALUES (?, ?, ?, ?)", rows)

    def save_scores(
        self, scores: Mapping[str, Sequence[ScoreRow]], claim: Claim | None = None
    ) -> None:
        """Score rows by point key, replacing a judge's earlier verdicts on them.

        With ``claim`` (a worker's rescore job), only while that claim holds the job,
        checked in the same transaction; else ClaimLost is raised.
        """
        rows = [_score_values(key, s) for key, batch in scores.items() for s in batch]
        with self.transaction() as conn:
            if claim is not None:
                check_claim(conn, claim)
            conn.executemany(_INSERT_SCORE.replace("INSERT", "INSERT OR REPLACE"), rows)

    def points_frame(self, run_id: str, judge: str = "keyword") -> pd.DataFrame:
        """One row per grid point: coords, status, ASR (percent) under ``judge``.

        Unfinished points have status NULL and ASR NaN; ASR is NaN too where the judge
        has not scored the point yet. Answers whose judge reply held no verdict
        (evidence ``unparsed: ...``, ``Verdict.unparsed``) are left out of ASR and
        counted in ``unparsed``.
        """
        with self.connect() as conn:
            return pd.read_sql_query(
                """SELECT rp.idx, rp.rep, rp.i, rp.j, rp.alpha, rp.beta, rp.point_key,
                          p.status, p.error, p.n_prompts, p.n_tokens, p.seconds,
                          100.0 * AVG(CASE WHEN s.evidence LIKE 'unparsed:%'
                                           THEN NULL ELSE 1 - s.refused END) AS asr,
                          COALESCE(SUM(s.evidence LIKE 'unparsed:%'), 0) AS unparsed
                   FROM run_points rp
                   LEFT JOIN points p ON p.point_key = rp.point_key
                   LEFT JOIN scores s ON s.point_key = rp.point_key AND s.judge = ?
                   WHERE rp.run_id = ?
                   GROUP BY rp.idx ORDER BY rp.idx""",
                conn,
                params=(judge, run_id),
            )

    def points_origin(self, run_id: str) -> pd.DataFrame:
        """The run's stored points, where they came from and who else holds them.

        Columns: ``point_key, status, seconds, finished, other_runs`` (runs that hold it).
        """
        with self.connect() as conn:
            return pd.read_sql_query(
                """SELECT rp.point_key, p.status, p.seconds, p.finished,
                          (SELECT COUNT(DISTINCT o.run_id) FROM run_points o
                           WHERE o.point_key = rp.point_key AND o.run_id != rp.run_id)
                          AS other_runs
                   FROM run_points rp JOIN points p ON p.point_key = rp.point_key
                   WHERE rp.run_id = ?""",
                conn,
                params=(run_id,),
            )

    def measures_frame(self, run_id: str) -> pd.DataFrame:
        """Per-prompt measures of a run, one column per measure name, with coords."""
        with self.connect() as conn:
            long = pd.read_sql_query(
                """SELECT rp.idx, rp.rep, rp.i, rp.j, rp.alpha, rp.beta, m.prompt_index, m.name,
                          m.value
                   FROM run_points rp JOIN measures m ON m.point_key = rp.point_key
                   WHERE rp.run_id = ?""",
                conn,
                params=(run_id,),
            )
        keys = ["idx", "rep", "i", "j", "alpha", "beta", "prompt_index"]
        return long.pivot_table(index=keys, columns="name", values="value").reset_index()

    def judges(self, run_id: str) -> list[str]:
        """The judges that have scored any answer of the run, the paper's first."""
        with self.connect() as conn:
            rows = conn.execute(
                """SELECT DISTINCT s.judge FROM run_points rp
                   JOIN scores s ON s.point_key = rp.point_key WHERE rp.run_id = ?""",
                (run_id,),
            ).fetchall()
        return sorted((r[0] for r in rows), key=lambda j: (j != "keyword", j))

    def generations_frame(self, run_id: str, judge: str = "keyword") -> pd.DataFrame:
        """Every stored answer of a run with its coords and verdict under ``judge``."""
        with self.connect() as conn:
            return pd.read_sql_query(
                """SELECT rp.idx, rp.rep, rp.alpha, rp.beta, g.point_key, g.prompt_index,
                          g.prompt,
                          g.text, g.n_tokens, g.stop_reason, s.refused, s.evidence,
                          s.matched, mn.value AS coherence_nll, mr.value AS repetition
                   FROM run_points rp
                   JOIN generations g ON g.point_key = rp.point_key
                   LEFT JOIN scores s ON s.point_key = g.point_key
                        AND s.prompt_index = g.prompt_index AND s.judge = ?
                   LEFT JOIN measures mn ON mn.point_key = g.point_key
                        AND mn.prompt_index = g.prompt_index AND mn.name = 'coherence_nll'
                   LEFT JOIN measures mr ON mr.point_key = g.point_key
                        AND mr.prompt_index = g.prompt_index AND mr.name = 'repetition'
                   WHERE rp.run_id = ?
                   ORDER BY rp.idx, g.prompt_index""",
                conn,
                params=(judge, run_id),
            )

"""The results store: one SQLite file in WAL mode under the data directory.

A missing row means "not done": a point is written with all its generations and
scores in one transaction, so a killed process leaves it absent, never half there.
Each call opens its own short-lived connection, so one ``Store`` is safe to share
between threads and processes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from landscape_core.errors import UserError

DB_NAME = "store.sqlite"

# Numbered migrations; each runs with its version bump in one transaction.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            label TEXT NOT NULL DEFAULT '',
            spec_json TEXT NOT NULL,
            provenance_json TEXT NOT NULL,
            n_points INTEGER NOT NULL,
            created REAL NOT NULL)""",
        """CREATE TABLE run_points (
            run_id TEXT NOT NULL REFERENCES runs(run_id),
            idx INTEGER NOT NULL,
            point_key TEXT NOT NULL,
            i INTEGER NOT NULL,
            j INTEGER NOT NULL,
            alpha REAL NOT NULL,
            beta REAL NOT NULL,
            PRIMARY KEY (run_id, idx))""",
        "CREATE INDEX run_points_by_key ON run_points(point_key)",
        """CREATE TABLE points (
            point_key TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
            error TEXT NOT NULL DEFAULT '',
            n_prompts INTEGER NOT NULL,
            n_tokens INTEGER NOT NULL,
            seconds REAL NOT NULL,
            finished REAL NOT NULL)""",
        """CREATE TABLE generations (
            point_key TEXT NOT NULL,
            prompt_index INTEGER NOT NULL,
            prompt TEXT NOT NULL,
            text TEXT NOT NULL,
            n_tokens INTEGER NOT NULL,
            stop_reason TEXT NOT NULL,
            PRIMARY KEY (point_key, prompt_index))""",
        """CREATE TABLE scores (
            point_key TEXT NOT NULL,
            prompt_index INTEGER NOT NULL,
            judge TEXT NOT NULL,
            refused INTEGER NOT NULL,
            evidence TEXT NOT NULL,
            PRIMARY KEY (point_key, prompt_index, judge))""",
        """CREATE TABLE file_digests (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL)""",
    ),
    (
        """CREATE TABLE jobs (
            job_id INTEGER PRIMARY KEY AUTOINCREMENT,
            label TEXT NOT NULL DEFAULT '',
            spec_json TEXT NOT NULL,
            run_id TEXT,
            status TEXT NOT NULL
                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            done INTEGER NOT NULL DEFAULT 0,
            total INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            worker_pid INTEGER,
            heartbeat REAL,
            error TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            started REAL,
            finished REAL)""",
        """CREATE TABLE workers (
            pid INTEGER PRIMARY KEY,
            started REAL NOT NULL,
            heartbeat REAL NOT NULL)""",
    ),
    (
        # numbers per prompt that are not verdicts: 'nll' and 'tokens' (perplexity
        # sweeps), 'p_refusal' (refusal-likelihood sweeps)
        """CREATE TABLE measures (
            point_key TEXT NOT NULL,
            prompt_index INTEGER NOT NULL,
            name TEXT NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (point_key, prompt_index, name))""",
    ),
)
HEARTBEAT_TIMEOUT = 15.0  # seconds without a heartbeat before a worker counts as dead


def pid_alive(pid: int | None) -> bool:
    """Whether a process of this machine with ``pid`` exists (workers run locally)."""
    if pid is None:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class GridPoint:
    idx: int  # position in the grid's snake order (sweeps visit in visit.order)
    i: int  # index along alpha
    j: int  # index along beta (0 in 1D)
    alpha: float
    beta: float
    key: str


@dataclass(frozen=True)
class PointResult:
    key: str
    status: str  # 'done' or 'failed'
    error: str
    seconds: float
    generations: Sequence[tuple[int, str, str, int, str]]  # index, prompt, text, tokens, stop
    scores: Sequence[tuple[int, str, bool, str]]  # index, judge, refused, evidence
    measures: Sequence[tuple[int, str, float]] = ()  # index, name, value


class Store:
    """Runs, points, generations and scores in ``root/store.sqlite``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / DB_NAME

    @classmethod
    def open(cls, root: str | Path) -> Store:
        """Open (creating and migrating if needed) the store under ``root``."""
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the store directory {root}: {exc}") from None
        store = cls(root)
        store._migrate()
        return store

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (Ctrl-C included)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise UserError(
                    f"{self.path} was written by a newer version of this tool "
                    f"(schema {version}); upgrade, or use another --store"
                )
            for number, steps in enumerate(MIGRATIONS[version:], start=version + 1):
                for sql in steps:
                    conn.execute(sql)
                conn.execute(f"PRAGMA user_version={number}")

    # --- file digests ----------------------------------------------------------------

    def file_digest(self, path: Path) -> str:
        """sha256 of a file, memoised by (path, size, mtime) so big models hash once."""
        from landscape_core.models import sha256_file

        stat = path.stat()
        key = str(path.resolve())
        with self._connect() as conn:
            row = conn.execute(
                "SELECT sha256 FROM file_digests WHERE path=? AND size=? AND mtime_ns=?",
                (key, stat.st_size, stat.st_mtime_ns),
            ).fetchone()
        if row:
            return row[0]
        digest = sha256_file(path)
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?)",
                (key, stat.st_size, stat.st_mtime_ns, digest),
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
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, label, json.dumps(spec), json.dumps(provenance), len(grid), time.time()),
            )
            if cur.rowcount == 0:
                return False
            conn.executemany(
                "INSERT INTO run_points VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, p.idx, p.key, p.i, p.j, p.alpha, p.beta) for p in grid],
            )
        return True

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's row with ``spec`` and ``provenance`` decoded. ``latest`` works too."""
        with self._connect() as conn:
            if run_id == "latest":
                row = conn.execute("SELECT * FROM runs ORDER BY created DESC LIMIT 1").fetchone()
            else:
                row = conn.execute(
                    "SELECT * FROM runs WHERE run_id=? OR run_id LIKE ? || '%'", (run_id, run_id)
                ).fetchone()
        if row is None:
            raise UserError(f"no run {run_id!r} in {self.path}; `runs` lists them")
        run_id, label, spec, provenance, n_points, created = row
        return {
            "run_id": run_id,
            "label": label,
            "spec": json.loads(spec),
            "provenance": json.loads(provenance),
            "n_points": n_points,
            "created": created,
        }

    def runs_frame(self) -> pd.DataFrame:
        """One row per run: id, label, size and how many points are finished."""
        with self._connect() as conn:
            return pd.read_sql_query(
                """SELECT r.run_id, r.label, r.n_points,
                          COUNT(p.point_key) AS finished,
                          SUM(p.status = 'failed') AS failed,
                          r.created
                   FROM runs r
                   LEFT JOIN run_points rp ON rp.run_id = r.run_id
                   LEFT JOIN points p ON p.point_key = rp.point_key
                   GROUP BY r.run_id ORDER BY r.created DESC""",
                conn,
            )

    def grid(self, run_id: str) -> list[GridPoint]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT idx, i, j, alpha, beta, point_key FROM run_points "
                "WHERE run_id=? ORDER BY idx",
                (run_id,),
            ).fetchall()
        return [GridPoint(*row) for row in rows]

    def pending(self, run_id: str) -> list[GridPoint]:
        """The run's points with no stored result, in visiting order."""
        with self._connect() as conn:
            rows = conn.execute(
                """SELECT rp.idx, rp.i, rp.j, rp.alpha, rp.beta, rp.point_key
                   FROM run_points rp LEFT JOIN points p ON p.point_key = rp.point_key
                   WHERE rp.run_id=? AND p.point_key IS NULL ORDER BY rp.idx""",
                (run_id,),
            ).fetchall()
        return [GridPoint(*row) for row in rows]

    # --- jobs and workers ----------------------------------------------------------

    def submit(self, spec: dict[str, Any], label: str = "") -> int:
        """Queue a sweep spec (as a dict) for the worker; returns the job id."""
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT INTO jobs (label, spec_json, status, created) VALUES (?, ?, 'queued', ?)",
                (label, json.dumps(spec), time.time()),
            )
            return int(cur.lastrowid)

    def claim_job(self, pid: int) -> dict[str, Any] | None:
        """Atomically take the oldest queued job, or None; two workers never share one."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT job_id, spec_json FROM jobs WHERE status='queued' "
                "AND cancel_requested=0 ORDER BY job_id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            conn.execute(
                "UPDATE jobs SET status='running', worker_pid=?, heartbeat=?, started=?, "
                "error='' WHERE job_id=?",
                (pid, now, now, row[0]),
            )
        return {"job_id": row[0], "spec": json.loads(row[1])}

    def update_job(self, job_id: int, **fields: Any) -> None:
        """Set some of: run_id, done, total, heartbeat, status, error, finished."""
        allowed = {"run_id", "done", "total", "heartbeat", "status", "error", "finished"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update job fields {sorted(unknown)}")
        assignments = ", ".join(f"{name}=?" for name in fields)
        with self._transaction() as conn:
            conn.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id=?", (*fields.values(), job_id)
            )

    def cancel_requested(self, job_id: int) -> bool:
        with self._connect() as conn:
            row = conn.execute("SELECT cancel_requested FROM jobs WHERE job_id=?", (job_id,))
            return bool(row.fetchone()[0])

    def cancel_job(self, job_id: int) -> None:
        """A queued job is cancelled at once; a running one within one batch."""
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET cancel_requested=1 WHERE job_id=?", (job_id,))
            conn.execute(
                "UPDATE jobs SET status='cancelled', finished=? WHERE job_id=? AND status='queued'",
                (time.time(), job_id),
            )

    def resume_job(self, job_id: int) -> None:
        """Queue an interrupted, failed or cancelled job again; finished points are kept."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status='queued', cancel_requested=0, error='', finished=NULL, "
                "worker_pid=NULL WHERE job_id=? AND status != 'done'",
                (job_id,),
            )

    def jobs_frame(self) -> pd.DataFrame:
        """All jobs, newest first, with dead workers' jobs shown as ``interrupted``.

        A running job whose worker is gone or silent shows ``interrupted``;
        ``resume_job`` queues it again and it finishes from its stored points.
        """
        with self._connect() as conn:
            frame = pd.read_sql_query(
                "SELECT job_id, label, run_id, status, done, total, cancel_requested, "
                "worker_pid, heartbeat, error, created, started, finished "
                "FROM jobs ORDER BY job_id DESC",
                conn,
            )
        silent = frame.heartbeat.fillna(0) < time.time() - HEARTBEAT_TIMEOUT
        dead = ~frame.worker_pid.map(lambda pid: pid_alive(None if pd.isna(pid) else pid))
        frame.loc[(frame.status == "running") & (silent | dead), "status"] = "interrupted"
        return frame

    def register_worker(self, pid: int) -> bool:
        """Record a worker; False if another live worker already serves this store."""
        now = time.time()
        with self._transaction() as conn:
            for (other,) in conn.execute("SELECT pid FROM workers WHERE pid != ?", (pid,)):
                if pid_alive(other):
                    row = conn.execute("SELECT heartbeat FROM workers WHERE pid=?", (other,))
                    if row.fetchone()[0] >= now - HEARTBEAT_TIMEOUT:
                        return False
                conn.execute("DELETE FROM workers WHERE pid=?", (other,))
            conn.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, ?)", (pid, now, now))
        return True

    def worker_heartbeat(self, pid: int) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE workers SET heartbeat=? WHERE pid=?", (time.time(), pid))

    def unregister_worker(self, pid: int) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM workers WHERE pid=?", (pid,))

    def live_worker(self) -> int | None:
        """The pid of a worker that heartbeated recently, or None."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT pid FROM workers WHERE heartbeat >= ? ORDER BY heartbeat DESC",
                (time.time() - HEARTBEAT_TIMEOUT,),
            ).fetchall()
        return next((int(pid) for (pid,) in rows if pid_alive(pid)), None)

    # --- points ----------------------------------------------------------------------

    def save_point(self, result: PointResult) -> bool:
        """All rows of a point, or none. False if another process stored it first."""
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    result.key,
                    result.status,
                    result.error,
                    len(result.generations),
                    sum(g[3] for g in result.generations),
                    result.seconds,
                    time.time(),
                ),
            )
            if cur.rowcount == 0:
                return False
            conn.executemany(
                "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?)",
                [(result.key, *g) for g in result.generations],
            )
            conn.executemany(
                "INSERT INTO scores VALUES (?, ?, ?, ?, ?)",
                [(result.key, i, judge, int(r), ev) for i, judge, r, ev in result.scores],
            )
            conn.executemany(
                "INSERT INTO measures VALUES (?, ?, ?, ?)",
                [(result.key, i, name, float(v)) for i, name, v in result.measures],
            )
        return True

    def point_answers(self, point_key: str) -> list[str] | None:
        """A finished point's answers in prompt order; None if it is not stored as done."""
        with self._connect() as conn:
            status = conn.execute(
                "SELECT status FROM points WHERE point_key = ?", (point_key,)
            ).fetchone()
            if status is None or status[0] != "done":
                return None
            rows = conn.execute(
                "SELECT text FROM generations WHERE point_key = ? ORDER BY prompt_index",
                (point_key,),
            ).fetchall()
        return [r[0] for r in rows]

    def save_scores(self, rows: Sequence[tuple[str, int, str, bool, str]]) -> None:
        """(point_key, prompt_index, judge, refused, evidence) rows, replacing old ones."""
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
                [(k, i, j, int(r), ev) for k, i, j, r, ev in rows],
            )

    def points_frame(self, run_id: str, judge: str = "keyword") -> pd.DataFrame:
        """One row per grid point: coords, status, ASR (percent) under ``judge``.

        Unfinished points have status NULL and ASR NaN; ASR is NaN too where the judge
        has not scored the point yet.
        """
        with self._connect() as conn:
            return pd.read_sql_query(
                """SELECT rp.idx, rp.i, rp.j, rp.alpha, rp.beta, rp.point_key,
                          p.status, p.error, p.n_prompts, p.n_tokens, p.seconds,
                          100.0 * AVG(1 - s.refused) AS asr
                   FROM run_points rp
                   LEFT JOIN points p ON p.point_key = rp.point_key
                   LEFT JOIN scores s ON s.point_key = rp.point_key AND s.judge = ?
                   WHERE rp.run_id = ?
                   GROUP BY rp.idx ORDER BY rp.idx""",
                conn,
                params=(judge, run_id),
            )

    def measures_frame(self, run_id: str) -> pd.DataFrame:
        """Per-prompt measures of a run, one column per measure name, with coords."""
        with self._connect() as conn:
            long = pd.read_sql_query(
                """SELECT rp.idx, rp.i, rp.j, rp.alpha, rp.beta, m.prompt_index, m.name,
                          m.value
                   FROM run_points rp JOIN measures m ON m.point_key = rp.point_key
                   WHERE rp.run_id = ?""",
                conn,
                params=(run_id,),
            )
        keys = ["idx", "i", "j", "alpha", "beta", "prompt_index"]
        return long.pivot_table(index=keys, columns="name", values="value").reset_index()

    def judges(self, run_id: str) -> list[str]:
        """The judges that have scored any answer of the run, the paper's first."""
        with self._connect() as conn:
            rows = conn.execute(
                """SELECT DISTINCT s.judge FROM run_points rp
                   JOIN scores s ON s.point_key = rp.point_key WHERE rp.run_id = ?""",
                (run_id,),
            ).fetchall()
        return sorted((r[0] for r in rows), key=lambda j: (j != "keyword", j))

    def generations_frame(self, run_id: str, judge: str = "keyword") -> pd.DataFrame:
        """Every stored answer of a run with its coords and verdict under ``judge``."""
        with self._connect() as conn:
            return pd.read_sql_query(
                """SELECT rp.idx, rp.alpha, rp.beta, g.point_key, g.prompt_index, g.prompt,
                          g.text, g.n_tokens, g.stop_reason, s.refused, s.evidence
                   FROM run_points rp
                   JOIN generations g ON g.point_key = rp.point_key
                   LEFT JOIN scores s ON s.point_key = g.point_key
                        AND s.prompt_index = g.prompt_index AND s.judge = ?
                   WHERE rp.run_id = ?
                   ORDER BY rp.idx, g.prompt_index""",
                conn,
                params=(judge, run_id),
            )

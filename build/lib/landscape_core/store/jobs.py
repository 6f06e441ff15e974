"""The job queue and the worker registry, beside the results in the same store.

"Interrupted" is not stored: a running job whose worker is gone or silent shows as
interrupted, and ``resume`` queues it again.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pandas as pd

from landscape_core.store.database import Database

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


class JobQueue:
    """Queued sweep specs, their progress and the live workers."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def submit(self, spec: dict[str, Any], label: str = "") -> int:
        """Queue a sweep spec (as a dict) for the worker; returns the job id."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO jobs (label, spec_json, status, created) VALUES (?, ?, 'queued', ?)",
                (label, json.dumps(spec), time.time()),
            )
            return int(cur.lastrowid)

    def claim(self, pid: int) -> dict[str, Any] | None:
        """Atomically take the oldest queued job, or None; two workers never share one."""
        with self.db.transaction() as conn:
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

    def update(self, job_id: int, **fields: Any) -> None:
        """Set some of: run_id, done, total, heartbeat, status, error, finished."""
        allowed = {"run_id", "done", "total", "heartbeat", "status", "error", "finished"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update job fields {sorted(unknown)}")
        assignments = ", ".join(f"{name}=?" for name in fields)
        with self.db.transaction() as conn:
            conn.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id=?", (*fields.values(), job_id)
            )

    def cancel_requested(self, job_id: int) -> bool:
        with self.db.connect() as conn:
            row = conn.execute("SELECT cancel_requested FROM jobs WHERE job_id=?", (job_id,))
            return bool(row.fetchone()[0])

    def cancel(self, job_id: int) -> None:
        """A queued job is cancelled at once; a running one within one batch."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE jobs SET cancel_requested=1 WHERE job_id=?", (job_id,))
            conn.execute(
                "UPDATE jobs SET status='cancelled', finished=? WHERE job_id=? AND status='queued'",
                (time.time(), job_id),
            )

    def resume(self, job_id: int) -> None:
        """Queue an interrupted, failed or cancelled job again; finished points are kept."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status='queued', cancel_requested=0, error='', finished=NULL, "
                "worker_pid=NULL WHERE job_id=? AND status != 'done'",
                (job_id,),
            )

    def frame(self) -> pd.DataFrame:
        """All jobs, newest first, with dead workers' jobs shown as ``interrupted``.

        A running job whose worker is gone or silent shows ``interrupted``;
        ``resume`` queues it again and it finishes from its stored points.
        """
        with self.db.connect() as conn:
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
        with self.db.transaction() as conn:
            for (other,) in conn.execute("SELECT pid FROM workers WHERE pid != ?", (pid,)):
                if pid_alive(other):
                    row = conn.execute("SELECT heartbeat FROM workers WHERE pid=?", (other,))
                    if row.fetchone()[0] >= now - HEARTBEAT_TIMEOUT:
                        return False
                conn.execute("DELETE FROM workers WHERE pid=?", (other,))
            conn.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, ?)", (pid, now, now))
        return True

    def worker_heartbeat(self, pid: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE workers SET heartbeat=? WHERE pid=?", (time.time(), pid))

    def unregister_worker(self, pid: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM workers WHERE pid=?", (pid,))

    def live_worker(self) -> int | None:
        """The pid of a worker that heartbeated recently, or None."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT pid FROM workers WHERE heartbeat >= ? ORDER BY heartbeat DESC",
                (time.time() - HEARTBEAT_TIMEOUT,),
            ).fetchall()
        return next((int(pid) for (pid,) in rows if pid_alive(pid)), None)

"""The job queue and the worker registry, beside the results in the same store.

"Interrupted" and "cancelling" are not stored: a running job whose worker process is
gone shows as interrupted, and ``resume`` queues it again; a running job asked to
cancel shows as cancelling until its worker stops it (``cancelled``). A job runs in
one process at a time: ``claim`` gives each run of it a token, every point's save
checks the token in the same transaction (``check_claim``), and a worker whose token
was taken stops.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from landscape_core.errors import ClaimLost, UserError
from landscape_core.store.database import Database

JobKind = Literal["sweep", "rescore"]  # jobs.kind: what the worker runs for it
STALE_S = 600.0  # a worker silent this long counts as gone even if its pid is alive
MAX_CRASHES = 2  # a job that kills its worker this often is failed, not queued again
WORKER_LOG = "worker.log"  # in the store's directory
LOG_TAIL_LINES = 20
# statuses of a job that a worker holds or will take (``frame``'s, derived ones included)
ACTIVE = ("queued", "running", "cancelling")


def pid_alive(pid: int | None) -> bool:
    """Whether a process of this machine with ``pid`` runs (workers run locally).

    A zombie (exited, not yet reaped by its parent) is not alive.
    """
    if pid is None:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: the signal check is all there is


def worker_gone(pid: Any, heartbeat: Any, now: float | None = None) -> bool:
    """A worker is gone when its process is, or it has been silent for ``STALE_S``.

    The process check is what counts; the long silence only guards against a pid
    reused by another process after a crash or a reboot.
    """
    now = time.time() if now is None else now
    if pid is None or pd.isna(pid):
        return True
    silent = heartbeat is None or pd.isna(heartbeat) or heartbeat < now - STALE_S
    return not pid_alive(int(pid)) or silent


class Stage(StrEnum):
    """What a running job is doing (``jobs.stage``); its ETA counts only POINTS."""

    LOADING = "loading the model"
    CONVERTING = "converting the bundled model (first run only), then loading it"
    POINTS = "computing points"
    COHERENCE = "measuring coherence"
    JUDGING = "judging stored answers"  # a rescore job: points judged, none generated


def remaining_seconds(
    done: int, total: int, done_at_start: int, points_started: float | None, now: float
) -> float | None:
    """Time left for a running job, from the points it has computed itself.

    Points finished in an earlier session (a resume) and the model's load or first
    conversion are not in the rate, so the figure is neither too short after a resume
    nor too long at the start. None until the job has timed one point.
    """
    timed = done - done_at_start
    if points_started is None or pd.isna(points_started) or timed <= 0:
        return None
    return (now - points_started) / timed * (total - done)


@dataclass(frozen=True)
class WorkerState:
    """The store's live worker, for the app's sidebar."""

    pid: int
    busy: bool
    exits_at: float | None  # when an idle worker with a timeout exits (epoch seconds)


@dataclass(frozen=True)
class Claim:
    """One worker's hold on one job."""

    job_id: int
    token: str


@dataclass(frozen=True)
class ClaimedJob:
    claim: Claim
    spec: dict[str, Any]
    kind: JobKind = "sweep"


def check_claim(conn: sqlite3.Connection, claim: Claim) -> None:
    """Inside a write transaction: raise ClaimLost unless ``claim`` still holds its job."""
    row = conn.execute("SELECT claim_token FROM jobs WHERE job_id=?", (claim.job_id,)).fetchone()
    if row is None or row[0] != claim.token:
        raise ClaimLost(f"job {claim.job_id} is no longer held by this worker")


class JobQueue:
    """Queued sweep specs, their progress and the live workers."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def submit(
        self,
        spec: dict[str, Any],
        label: str = "",
        run_id: str | None = None,
        kind: JobKind = "sweep",
    ) -> int:
        """Queue a job's spec (as a dict) for the worker; returns the job id.

        ``kind``: a sweep spec, or a rescore's run and judge. ``run_id``, when the
        submitter knows it, is the job's run from the start, so "View" opens it before
        the worker has even loaded the model.
        """
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO jobs (label, spec_json, run_id, status, created, kind) "
                "VALUES (?, ?, ?, 'queued', ?, ?)",
                (label, json.dumps(spec), run_id, time.time(), kind),
            )
            return int(cur.lastrowid)

    def claim(self, pid: int) -> ClaimedJob | None:
        """Atomically take the oldest queued job, or None; two workers never share one."""
        token = uuid.uuid4().hex
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT job_id, spec_json, kind FROM jobs WHERE status='queued' "
                "AND cancel_requested=0 ORDER BY job_id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            conn.execute(
                "UPDATE jobs SET status='running', worker_pid=?, heartbeat=?, started=?, "
                "error='', claim_token=?, stage='starting', points_started=NULL WHERE job_id=?",
                (pid, now, now, token, row[0]),
            )
            conn.execute("UPDATE workers SET idle_since=NULL WHERE pid=?", (pid,))  # busy
        return ClaimedJob(Claim(row[0], token), json.loads(row[1]), row[2])

    def update(self, job_id: int, claim: Claim | None = None, **fields: Any) -> bool:
        """Set some of: run_id, done, total, heartbeat, status, error, finished, actors_json.

        With ``claim``, only while that claim holds the job; returns whether it did.
        """
        allowed = {
            "run_id", "done", "total", "heartbeat", "status", "error", "finished", "actors_json",
            "stage", "points_started", "done_at_start",
        }  # fmt: skip
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update job fields {sorted(unknown)}")
        assignments = ", ".join(f"{name}=?" for name in fields)
        where, params = "job_id=?", [job_id]
        if claim is not None:
            where, params = "job_id=? AND claim_token=?", [job_id, claim.token]
        with self.db.transaction() as conn:
            cur = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE {where}", (*fields.values(), *params)
            )
            return cur.rowcount == 1

    def release(self, claim: Claim) -> None:
        """Give a job back unfinished (the worker was asked to stop): it is resumable."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET worker_pid=NULL, heartbeat=NULL, claim_token=NULL "
                "WHERE job_id=? AND claim_token=?",
                (claim.job_id, claim.token),
            )

    def cancel_requested(self, job_id: int) -> bool:
        with self.db.connect() as conn:
            row = conn.execute("SELECT cancel_requested FROM jobs WHERE job_id=?", (job_id,))
            return bool(row.fetchone()[0])

    def cancel(self, job_id: int) -> None:
        """A queued job is cancelled at once; a running one within one batch.

        Until its worker stops it, a running job shows ``cancelling``; a worker that
        claimed it a moment before stops before loading the model (``worker.run_job``).
        """
        with self.db.transaction() as conn:
            conn.execute("UPDATE jobs SET cancel_requested=1 WHERE job_id=?", (job_id,))
            conn.execute(
                "UPDATE jobs SET status='cancelled', finished=? WHERE job_id=? AND status='queued'",
                (time.time(), job_id),
            )

    def resume(self, job_id: int, on_new_versions: str | None = None) -> str:
        """Queue an interrupted, failed or cancelled job again; finished points are kept.

        ``on_new_versions`` (``recompute`` or ``accept``) goes into the job's spec: what
        its sweep does with stored points of other torch/transformers versions, which
        stopped it (``plan.versions``). A job whose worker still runs is refused. A job
        whose worker died under it counts a crash; at ``MAX_CRASHES`` it is failed with
        the worker log's last lines instead, so a job that kills its worker is not
        retried forever. Returns the job's new status.
        """
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT status, worker_pid, heartbeat, crashes FROM jobs WHERE job_id=?",
                (job_id,),
            ).fetchone()
            if row is None:
                raise UserError(f"no job {job_id}")
            status, pid, heartbeat, crashes = row
            if status == "done":
                return status
            if status == "running" and not worker_gone(pid, heartbeat):
                raise UserError(f"job {job_id} is still running in worker pid {pid}")
            if status == "running" and pid is not None:  # its worker died mid-job
                crashes += 1
            if crashes >= MAX_CRASHES:
                error = (
                    f"the worker died {crashes} times running this job, so it is not "
                    f"retried; the last lines of {self.log_path}:\n{self.log_tail()}"
                )
                conn.execute(
                    "UPDATE jobs SET status='failed', crashes=?, error=?, finished=?, "
                    "worker_pid=NULL, claim_token=NULL WHERE job_id=?",
                    (crashes, error, time.time(), job_id),
                )
                return "failed"
            conn.execute(
                "UPDATE jobs SET status='queued', cancel_requested=0, error='', finished=NULL, "
                "worker_pid=NULL, claim_token=NULL, crashes=? WHERE job_id=?",
                (crashes, job_id),
            )
            if on_new_versions is not None:
                row = conn.execute("SELECT spec_json FROM jobs WHERE job_id=?", (job_id,))
                spec = json.loads(row.fetchone()[0])
                spec.setdefault("runtime", {})["on_new_versions"] = on_new_versions
                conn.execute(
                    "UPDATE jobs SET spec_json=? WHERE job_id=?", (json.dumps(spec), job_id)
                )
            return "queued"

    def frame(self) -> pd.DataFrame:
        """All jobs, newest first, with dead workers' jobs shown as ``interrupted``.

        A running job whose worker is gone shows ``interrupted``; ``resume`` queues
        it again and it finishes from its stored points. A running job asked to
        cancel shows ``cancelling`` until its worker acknowledges (``cancelled``).
        """
        with self.db.connect() as conn:
            frame = pd.read_sql_query(
                "SELECT job_id, label, run_id, status, done, total, cancel_requested, "
                "worker_pid, heartbeat, error, created, started, finished, crashes, "
                "actors_json, stage, points_started, done_at_start, kind FROM jobs "
                "ORDER BY job_id DESC",
                conn,
            )
        if frame.empty:
            return frame
        now = time.time()
        gone = frame.apply(lambda r: worker_gone(r.worker_pid, r.heartbeat, now), axis=1)
        frame.loc[(frame.status == "running") & gone.astype(bool), "status"] = "interrupted"
        asked = frame.cancel_requested.astype(bool)
        frame.loc[(frame.status == "running") & asked, "status"] = "cancelling"
        return frame

    @property
    def log_path(self) -> Path:
        return self.db.root / WORKER_LOG

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The worker log's last lines ('' when there is none)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 64 * 1024))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def register_worker(self, pid: int, idle_timeout: float | None = None) -> bool:
        """Record a worker, idle from now; False if another live worker serves this store.

        ``idle_timeout``: it exits after that many idle seconds (None: never).
        """
        now = time.time()
        with self.db.transaction() as conn:
            others = conn.execute("SELECT pid, heartbeat FROM workers WHERE pid != ?", (pid,))
            for other, heartbeat in others.fetchall():
                if not worker_gone(other, heartbeat, now):
                    return False
                conn.execute("DELETE FROM workers WHERE pid=?", (other,))
            conn.execute(
                "INSERT OR REPLACE INTO workers (pid, started, heartbeat, idle_since, "
                "idle_timeout) VALUES (?, ?, ?, ?, ?)",
                (pid, now, now, now, idle_timeout),
            )
        return True

    def still_registered(self, pid: int, idle_timeout: float | None = None) -> bool:
        """Whether ``pid`` is (again) this store's worker; False if another live one is.

        A worker that looked dead loses its row to the next worker that registers (and
        its job to a resume); it must not go on claiming jobs beside that one.
        """
        with self.db.connect() as conn:
            row = conn.execute("SELECT 1 FROM workers WHERE pid=?", (pid,)).fetchone()
        return row is not None or self.register_worker(pid, idle_timeout)

    def worker_idle(self, pid: int, since: float | None) -> None:
        """Record that the worker is idle since ``since``, or busy (None)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE workers SET idle_since=? WHERE pid=?", (since, pid))

    def worker_heartbeat(self, pid: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE workers SET heartbeat=? WHERE pid=?", (time.time(), pid))

    def unregister_worker(self, pid: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM workers WHERE pid=?", (pid,))

    def live_worker(self) -> int | None:
        """The pid of a registered worker that is not gone, or None."""
        state = self.worker_state()
        return None if state is None else state.pid

    def worker_state(self) -> WorkerState | None:
        """The live worker, and when it will exit if it stays idle; None when none runs."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT pid, heartbeat, idle_since, idle_timeout FROM workers "
                "ORDER BY heartbeat DESC"
            ).fetchall()
        now = time.time()
        for pid, heartbeat, idle_since, idle_timeout in rows:
            if not worker_gone(pid, heartbeat, now):
                exits = None
                if idle_since is not None and idle_timeout is not None:
                    exits = idle_since + idle_timeout
                return WorkerState(int(pid), idle_since is None, exits)
        return None

"""Leases on runs: which live processes are computing a run now (``store.leases``).

A job names the run its worker computes, but a CLI sweep has no job. Every sweep that
computes points holds a lease row while it does, so deleting a run can see it and
refuse. A lease is held by a process of this machine, alive when its pid runs with
the start time it had when it took the lease (a pid reused after a crash is not it);
a ``kill -9`` leaves a row that counts as dead and is removed by the next delete.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from landscape_core.errors import DiskFull
from landscape_core.store.database import Database
from landscape_core.store.jobs import pid_alive


def process_start(pid: int) -> str:
    """When ``pid`` started, in clock ticks since boot ('' without /proc)."""
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def holder_alive(pid: int, started: str) -> bool:
    """Whether the process that took a lease still runs (not a later one with its pid)."""
    return pid_alive(pid) and (not started or process_start(pid) == started)


class RunLeases:
    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def hold(self, run_id: str) -> Iterator[None]:
        """A lease on ``run_id`` for this process, given back whatever the exit."""
        token, pid = uuid.uuid4().hex, os.getpid()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO run_leases VALUES (?, ?, ?, ?, ?)",
                (token, run_id, pid, process_start(pid), time.time()),
            )
        try:
            yield
        finally:
            if not self.db.gone():
                try:
                    with self.db.transaction() as conn:
                        conn.execute("DELETE FROM run_leases WHERE token = ?", (token,))
                except (sqlite3.OperationalError, DiskFull):
                    pass  # a dead holder's row: the next delete removes it

    @staticmethod
    def live_holders(conn: sqlite3.Connection, run_id: str) -> list[int]:
        """Inside a write transaction: pids computing ``run_id``; dead holders' rows go."""
        live = []
        rows = conn.execute(
            "SELECT token, pid, started FROM run_leases WHERE run_id = ?", (run_id,)
        ).fetchall()
        for token, pid, started in rows:
            if holder_alive(pid, started):
                live.append(int(pid))
            else:
                conn.execute("DELETE FROM run_leases WHERE token = ?", (token,))
        return live

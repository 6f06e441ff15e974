"""One SQLite file in WAL mode, its migrations, and the one connection policy.

Each call opens its own short-lived connection, so a ``Database`` is safe to share
between threads and processes. Every write is ``BEGIN IMMEDIATE ... COMMIT``.
"""

from __future__ import annotations

import ast
import errno
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self
from urllib.parse import quote

from landscape_core.errors import DiskFull, UserError

DB_NAME = "store.sqlite"

Step = str | Callable[[sqlite3.Connection], None]

# How the two text judges wrote their evidence before the match had its own column.
_KEYWORD_EVIDENCE = re.compile(r"^matched (['\"].*['\"])$", re.DOTALL)
_PATTERN_EVIDENCE = re.compile(r"^[^:]+: (['\"].*['\"])( in the opening)?$", re.DOTALL)


def _backfill_matched(conn: sqlite3.Connection) -> None:
    """Recover ``matched`` from the evidence strings the text judges wrote.

    The strings held the match as a Python literal (``repr``), so it is read back
    with ``ast.literal_eval``, which evaluates literals only.
    """
    rows = conn.execute(
        "SELECT rowid, judge, evidence FROM scores "
        "WHERE refused = 1 AND judge IN ('keyword', 'refusal-patterns')"
    ).fetchall()
    updates = []
    for rowid, judge, evidence in rows:
        pattern = _KEYWORD_EVIDENCE if judge == "keyword" else _PATTERN_EVIDENCE
        m = pattern.match(evidence)
        if m is None:
            continue
        try:
            matched = ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError):
            continue
        if isinstance(matched, str):
            updates.append((matched, rowid))
    conn.executemany("UPDATE scores SET matched = ? WHERE rowid = ?", updates)


# Numbered migrations; each runs with its version bump in one transaction.
MIGRATIONS: tuple[tuple[Step, ...], ...] = (
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
    (
        # the text that decided a refusal, as data (it was only inside `evidence`)
        "ALTER TABLE scores ADD COLUMN matched TEXT",
        _backfill_matched,
    ),
    (
        # a job runs in one process at a time: each claim gets a token that every
        # point's save checks; crashes count the workers a job has killed
        "ALTER TABLE jobs ADD COLUMN claim_token TEXT",
        "ALTER TABLE jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # a run of many directions holds one landscape per seed: `rep` says whose
        "ALTER TABLE run_points ADD COLUMN rep INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # a job on Ray: its actors as JSON (name, node, state, point, points per minute)
        "ALTER TABLE jobs ADD COLUMN actors_json TEXT NOT NULL DEFAULT '[]'",
    ),
    (
        # every label a run was launched under: a reused run used to lose the new one
        """CREATE TABLE run_labels (
            run_id TEXT NOT NULL,
            label TEXT NOT NULL,
            PRIMARY KEY (run_id, label))""",
        "INSERT OR IGNORE INTO run_labels SELECT run_id, label FROM runs WHERE label != ''",
        # what a job is doing, and when its own first point began: the ETA's basis
        "ALTER TABLE jobs ADD COLUMN stage TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE jobs ADD COLUMN points_started REAL",
        "ALTER TABLE jobs ADD COLUMN done_at_start INTEGER NOT NULL DEFAULT 0",
        # an idle worker exits idle_timeout seconds after idle_since: the sidebar says when
        "ALTER TABLE workers ADD COLUMN idle_since REAL",
        "ALTER TABLE workers ADD COLUMN idle_timeout REAL",
    ),
    (
        # people's labels on answers, by labeller; judges' verdicts stay in `scores`
        """CREATE TABLE answer_labels (
            point_key TEXT NOT NULL,
            prompt_index INTEGER NOT NULL,
            labeller TEXT NOT NULL,
            label TEXT NOT NULL
                CHECK (label IN ('refused', 'complied', 'partial', 'incoherent')),
            created REAL NOT NULL,
            PRIMARY KEY (point_key, prompt_index, labeller))""",
    ),
    (
        # `defend` reports, read back by the app; every number in one is rebuilt from
        # stored points by re-running `defend`, which generates nothing then
        """CREATE TABLE defences (
            defence_id TEXT PRIMARY KEY,
            label TEXT NOT NULL,
            spec TEXT NOT NULL,
            report TEXT NOT NULL,
            created REAL NOT NULL)""",
    ),
    (
        # `trajectory` results: a finetune's checkpoints on a plane of weights, which
        # every 2D run over that plane (any grid, prompts or system prompt) draws
        """CREATE TABLE trajectories (
            plane_key TEXT NOT NULL,
            adapter TEXT NOT NULL,
            points TEXT NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (plane_key, adapter))""",
    ),
    (
        # the digest memo's key gains the inode and ctime: a same-size file swapped in
        # with its mtime kept (cp -p, touch -r) reused the old digest, and a stale run.
        # Old rows (-1) never match, so each file is hashed once more.
        "ALTER TABLE file_digests ADD COLUMN inode INTEGER NOT NULL DEFAULT -1",
        "ALTER TABLE file_digests ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT -1",
    ),
    (
        # a sweep's lease on the run it computes, CLI sweeps included (a job names
        # only a worker's): deleting a run a live process computes is refused
        """CREATE TABLE run_leases (
            token TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started TEXT NOT NULL,
            taken REAL NOT NULL)""",
    ),
    (
        # the package versions a point was computed under (``plan.versions``), as JSON;
        # NULL: stored before they were recorded (unknown, never guessed)
        "ALTER TABLE points ADD COLUMN versions_json TEXT",
    ),
    (
        # what a job does: a sweep (its spec in spec_json), or a rescore of a stored
        # run by one judge (spec_json: run_id and judge), which never generates
        "ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'sweep'",
    ),
    (
        # a labeller's free-text comment on an answer, kept with their label ('' none)
        "ALTER TABLE answer_labels ADD COLUMN comment TEXT NOT NULL DEFAULT ''",
    ),
)
BUSY_TIMEOUT_S = 30.0  # how long a statement waits for another process's write lock
RESERVE_NAME = ".reserve"  # released on a full disk, so an error can still be recorded
RESERVE_BYTES = 1 << 20


class Database:
    """``root/store.sqlite``, opened (created and migrated if needed) by ``open``.

    ``root`` is resolved to an absolute path once, so a worker started from another
    directory serves the same file. A store that cannot be written (a read-only copy
    or mount) opens for reading; a file that is not a store, or one deleted while in
    use, gives a message or a fresh store, never a traceback.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.path = self.root / DB_NAME
        self.read_only = False

    @classmethod
    def open(cls, root: str | Path) -> Self:
        db = cls(root)
        if db.path.exists() and not _writable(db.path):
            db.read_only = True
            db._check_version()
            return db
        try:
            db.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the store directory {db.root}: {exc}") from None
        db._migrate()
        return db

    def gone(self) -> bool:
        """Whether the store's directory or file was deleted since it was opened.

        ``connect`` would make a fresh store in its place; a worker asks this first
        and exits instead, so it never serves (or outlives) a store nobody reads.
        """
        return not self.path.is_file()

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def _connection(self) -> sqlite3.Connection:
        if self.read_only:  # nothing may change it, not even the -shm file
            uri = f"file:{quote(str(self.path))}?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        else:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            if not self.read_only:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            if "not a database" not in str(exc):
                raise  # a full disk or an I/O error: the caller decides
            raise UserError(
                f"{self.path} is not a store this tool can read ({exc}): move it aside to "
                "start a fresh store, or point --store (LANDSCAPE_STORE) at another directory"
            ) from None
        return conn

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        if not self.read_only and not self.path.exists():
            self._migrate()  # deleted while in use: start a fresh store in its place
        conn = self._connection()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (Ctrl-C included)."""
        if self.read_only:
            raise UserError(
                f"{self.path} is read-only: it can be browsed, not written; copy the "
                "directory somewhere writable to run sweeps into it"
            )
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if is_disk_full(exc):
                    raise self.disk_full() from None
                raise

    def disk_full(self, need: int | None = None) -> DiskFull:
        """The message for a write that found the disk full: how much is free, what to do.

        ``need``: the bytes the work in hand may still write, when the caller knows it.
        """
        free = shutil.disk_usage(self.root).free if self.root.exists() else 0
        size = sum(f.stat().st_size for f in self.root.glob(f"{DB_NAME}*") if f.is_file())
        needs = f"; this run may need up to {_size(need)} more" if need else ""
        return DiskFull(
            f"the disk holding the store {self.root} is full ({_size(free)} free, the store "
            f"file is {_size(size)}){needs}. Nothing was half-written: the last write was "
            "rolled back and finished points are kept. Free space on that disk, or point "
            "--store (LANDSCAPE_STORE) at a directory on a disk with room, then run again"
        )

    def _check_version(self) -> None:
        """A read-only store must already be at this version's schema."""
        conn = self._connection()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
        self._refuse_newer(version)
        if version < len(MIGRATIONS):
            raise UserError(
                f"{self.path} is read-only and from an older version (schema {version}); "
                "copy the directory somewhere writable so it can be upgraded"
            )

    def _refuse_newer(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise UserError(
                f"{self.path} was written by a newer version of this tool "
                f"(schema {version}); upgrade, or use another --store"
            )

    def _migrate(self) -> None:
        """Bring the file to this version's schema.

        The version is read first without a lock: a store already current (every open
        but the first after an upgrade) takes no write lock, so ``runs`` and the app's
        pages open while a sweep or a long migration holds one.
        """
        conn = self._connection()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._refuse_newer(version)
            if version == len(MIGRATIONS):
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                self._refuse_newer(version)
                for number, steps in enumerate(MIGRATIONS[version:], start=version + 1):
                    for step in steps:
                        if callable(step):
                            step(conn)
                        else:
                            conn.execute(step)
                    conn.execute(f"PRAGMA user_version={number}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # --- room to record an error on a full disk -----------------------------------

    def keep_reserve(self) -> None:
        """Hold a little disk space that ``release_reserve`` can give back."""
        path = self.root / RESERVE_NAME
        if self.read_only or (path.is_file() and path.stat().st_size >= RESERVE_BYTES):
            return
        try:
            with open(path, "wb") as fh:
                fh.write(b"\0" * RESERVE_BYTES)
        except OSError:
            path.unlink(missing_ok=True)  # no room now; try again after the next job

    def release_reserve(self) -> None:
        (self.root / RESERVE_NAME).unlink(missing_ok=True)


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL, or a file write's ENOSPC."""
    if isinstance(exc, sqlite3.OperationalError):
        return "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def _size(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def _writable(path: Path) -> bool:
    """Whether the store file and its directory can be written (WAL needs both)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)

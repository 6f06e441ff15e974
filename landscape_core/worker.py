"""The background worker: ``python -m landscape_core worker``.

It claims queued jobs from the store one at a time and runs each with the same verb
as the CLI: ``sweep.run`` for a sweep job, ``rescore.rescore`` for a rescore job (a
stored run judged again, nothing generated). A side thread heartbeats (and survives a
failed write), so the app can tell a live worker from a dead one; a job whose worker
died shows as interrupted and resumes from its finished points. Cancellation is read
from the store before the model loads and before every generation batch (a rescore:
before every point).
SIGTERM stops the worker between batches and leaves its job resumable. Each claim's
token is checked before every point is saved, so a job never runs in two processes.
A worker whose registration was taken (it looked dead, and another took its job and
its place) registers again before its next claim, or exits when that other worker
lives: one worker per store.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable

from landscape_core import sweep
from landscape_core.errors import ClaimLost, DiskFull, UserError
from landscape_core.rescore import rescore
from landscape_core.spec.config import RescoreSpec, SweepSpec
from landscape_core.store.jobs import Claim, ClaimedJob, Stage
from landscape_core.store.runs import Store

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
POLL_S = 1.0


class Terminated(BaseException):
    """SIGTERM: unwinds the sweep like Ctrl-C (weights restored, no half point)."""


def serve(store: Store, *, exit_when_idle: bool = False, idle_timeout: float | None = None) -> bool:
    """Run queued jobs until stopped.

    With ``exit_when_idle`` it returns once the queue is empty; with ``idle_timeout``
    once the queue has been empty that many seconds (the app's workers use this, so
    none outlives the app for long). Returns False at once if another live worker
    already serves this store.
    """
    pid = os.getpid()
    if not store.jobs.register_worker(pid, idle_timeout):
        log.info("another worker already serves %s", store.root)
        return False
    current: dict[str, Claim] = {}
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(store, pid, current, stop), daemon=True)
    beat.start()
    restore = _stop_on_sigterm()
    store.keep_reserve()
    idle_since = time.monotonic()

    def idle_too_long() -> bool:
        return idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout

    try:
        while True:
            if store.gone():
                log.warning("the store %s was deleted; this worker exits", store.root)
                return True
            try:
                if not store.jobs.still_registered(pid, idle_timeout):
                    log.warning("another worker took over %s; this one exits", store.root)
                    return True
                job = store.jobs.claim(pid)
            except (sqlite3.OperationalError, DiskFull) as exc:  # locked for long, or disk full
                if idle_too_long():
                    log.warning("could not read the queue (%s); idle too long, exiting", exc)
                    return True
                log.warning("could not read the queue (%s); retrying", exc)
                time.sleep(POLL_S)
                continue
            if job is None:
                if exit_when_idle or idle_too_long():
                    return True
                time.sleep(POLL_S)
                continue
            current["claim"] = job.claim  # the claim marked this worker busy
            run_job(store, job)
            current.clear()
            store.keep_reserve()
            idle_since = time.monotonic()
            store.jobs.worker_idle(pid, time.time())
    except Terminated:
        log.warning("stopped by SIGTERM; the job stays resumable")
        return True
    finally:
        stop.set()
        beat.join()  # no beat may recreate a deleted store after this
        _sign_off(store, pid, current.get("claim"))
        restore()


def _sign_off(store: Store, pid: int, claim: Claim | None) -> None:
    """Give back the job and the registration, unless the store is gone (nothing to tell)."""
    if store.gone():
        return
    try:
        if claim is not None:
            store.jobs.release(claim)
        store.jobs.unregister_worker(pid)
    except (sqlite3.OperationalError, DiskFull) as exc:
        log.warning("could not sign off from %s (%s)", store.root, exc)


def _stop_on_sigterm() -> Callable[[], object]:
    """Turn SIGTERM into ``Terminated`` in the main thread; returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _heartbeat(store: Store, pid: int, current: dict[str, Claim], stop: threading.Event) -> None:
    """Beat every HEARTBEAT_S; a failed write (locked, disk full) is logged and retried."""
    while not stop.wait(HEARTBEAT_S):
        if store.gone():
            return  # a write would make a fresh store in its place; serve exits
        try:
            store.jobs.worker_heartbeat(pid)
            claim = current.get("claim")
            if claim is not None:
                store.jobs.update(claim.job_id, claim, heartbeat=time.time())
        except Exception as exc:  # the next beat tries again; the job goes on
            log.warning("heartbeat failed (%s); retrying in %.0f s", exc, HEARTBEAT_S)


def run_job(store: Store, job: ClaimedJob) -> str:
    """Run one claimed job to an end state: done, cancelled or failed (with the error).

    A sweep job runs ``sweep.run``; a rescore job judges a stored run's answers with
    ``rescore.rescore`` (skipping points already judged, so a resume goes on where it
    stopped) and generates nothing. Returns ``lost`` without touching the job when
    another worker took it over.
    """
    claim = job.claim
    timing: dict[str, object] = {}  # when this claim's points began, and how many were done

    def record(run_id: str, done: int, total: int, stage: str, actors: str = "[]") -> None:
        if stage in (Stage.POINTS, Stage.JUDGING) and not timing:  # the ETA counts from here
            timing.update(points_started=time.time(), done_at_start=done)
        store.jobs.update(
            claim.job_id, claim, run_id=run_id, done=done, total=total,
            heartbeat=time.time(), actors_json=actors, stage=stage, **timing,
        )  # fmt: skip

    def on_progress(progress: sweep.Progress) -> None:
        actors = json.dumps([a.to_dict() for a in progress.actors])
        record(progress.run_id, progress.done, progress.total, progress.stage, actors)

    def should_stop() -> bool:
        return store.jobs.cancel_requested(claim.job_id)

    status, error = "failed", ""
    try:
        if should_stop():  # cancelled as it was claimed: the model is never loaded
            status = "cancelled"
        elif job.kind == "rescore":
            asked = RescoreSpec.from_dict(job.spec)
            rescored = rescore(
                store, asked.run_id, asked.judge, only_missing=True, should_stop=should_stop,
                on_progress=lambda p: record(asked.run_id, p.done, p.total, p.stage),
                claim=claim,
            )  # fmt: skip
            status = "done" if rescored.complete else "cancelled"
        else:
            spec = SweepSpec.from_dict(job.spec)
            summary = sweep.run(
                spec, store, on_progress=on_progress, should_stop=should_stop, claim=claim
            )
            status = "done" if summary.status == "complete" else "cancelled"
            if summary.failed:
                error = f"{summary.failed} point(s) failed: " + "; ".join(summary.errors[:3])
    except ClaimLost:
        log.warning("job %s was taken over by another worker; this one stops", claim.job_id)
        return "lost"
    except UserError as exc:
        error = str(exc)
    except Exception as exc:  # the job fails with its error text; the worker lives on
        log.exception("job %s failed", claim.job_id)
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    _finish(store, claim, status, error)
    return status


def _finish(store: Store, claim: Claim, status: str, error: str) -> None:
    """Record the job's end; on a full disk, give back the reserve so the error lands."""
    try:
        store.jobs.update(claim.job_id, claim, status=status, error=error, finished=time.time())
    except (sqlite3.OperationalError, DiskFull) as exc:
        log.warning("could not record job %s's end (%s); using the reserve", claim.job_id, exc)
        store.release_reserve()
        store.jobs.update(claim.job_id, claim, status=status, error=error, finished=time.time())

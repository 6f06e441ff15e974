"""The background worker: ``python -m landscape_core worker``.

It claims queued jobs from the store one at a time and runs each with the same
``sweep.run`` as the CLI. A side thread heartbeats, so the app can tell a live worker
from a dead one; a job whose worker died shows as interrupted and resumes from its
finished points. Cancellation is read from the store before every generation batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from typing import Any

from landscape_core import sweep
from landscape_core.errors import UserError
from landscape_core.spec.config import SweepSpec
from landscape_core.store.runs import Store

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
POLL_S = 1.0


def serve(store: Store, *, exit_when_idle: bool = False, idle_timeout: float | None = None) -> bool:
    """Run queued jobs until stopped.

    With ``exit_when_idle`` it returns once the queue is empty; with ``idle_timeout``
    once the queue has been empty that many seconds (the app's workers use this, so
    none outlives the app for long). Returns False at once if another live worker
    already serves this store.
    """
    pid = os.getpid()
    if not store.jobs.register_worker(pid):
        log.info("another worker already serves %s", store.root)
        return False
    current: dict[str, int] = {}
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(store, pid, current, stop), daemon=True)
    beat.start()
    idle_since = time.monotonic()
    try:
        while True:
            job = store.jobs.claim(pid)
            if job is None:
                idle = time.monotonic() - idle_since
                if exit_when_idle or (idle_timeout is not None and idle >= idle_timeout):
                    return True
                time.sleep(POLL_S)
                continue
            current["job_id"] = job["job_id"]
            run_job(store, job)
            current.clear()
            idle_since = time.monotonic()
    finally:
        stop.set()
        store.jobs.unregister_worker(pid)


def _heartbeat(store: Store, pid: int, current: dict[str, int], stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        now = time.time()
        store.jobs.worker_heartbeat(pid)
        job_id = current.get("job_id")
        if job_id is not None:
            store.jobs.update(job_id, heartbeat=now)


def run_job(store: Store, job: dict[str, Any]) -> str:
    """Run one claimed job to an end state: done, cancelled or failed (with the error)."""
    job_id = job["job_id"]

    def on_progress(progress: sweep.Progress) -> None:
        store.jobs.update(
            job_id, run_id=progress.run_id, done=progress.done, total=progress.total,
            heartbeat=time.time(),
        )  # fmt: skip

    status, error = "failed", ""
    try:
        spec = SweepSpec.from_dict(job["spec"])
        summary = sweep.run(
            spec,
            store,
            on_progress=on_progress,
            should_stop=lambda: store.jobs.cancel_requested(job_id),
        )
        status = "done" if summary.status == "complete" else "cancelled"
        if summary.failed:
            error = f"{summary.failed} point(s) failed: " + "; ".join(summary.errors[:3])
    except UserError as exc:
        error = str(exc)
    except Exception as exc:  # the job fails with its error text; the worker lives on
        log.exception("job %s failed", job_id)
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    store.jobs.update(job_id, status=status, error=error, finished=time.time())
    return status

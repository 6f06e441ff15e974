"""Starting the background worker from the app, without importing the worker or torch.

The worker runs in its own process (``python -m landscape_core worker``), detached
from the app's script thread, with its output in ``worker.log`` in the store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from landscape_core.store.jobs import WORKER_LOG
from landscape_core.store.runs import Store

APP_WORKER_IDLE_S = 600.0  # a worker the app starts exits after 10 idle minutes
PACKAGE_PARENT = Path(__file__).resolve().parents[1]  # where `landscape_core` is importable
_children: list[subprocess.Popen] = []  # workers this process started, reaped when done


def spawn(store: Store) -> int:
    """Start a detached worker for ``store`` (output to worker.log); returns its pid.

    The store's absolute root is passed, and the package's parent joins PYTHONPATH, so
    the worker serves the same store from a checkout or an install, whatever the
    app's working directory.
    """
    env = dict(os.environ)
    paths = (str(PACKAGE_PARENT), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    with open(store.root / WORKER_LOG, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "landscape_core",
                "worker",
                "--store",
                str(store.root),
                "--idle-timeout",
                str(APP_WORKER_IDLE_S),
            ],  # fmt: skip
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the app's script thread and its reruns
            env=env,
        )
    _children.append(proc)
    return proc.pid


def reap() -> None:
    """Collect workers that have exited, so none lingers as a zombie."""
    _children[:] = [proc for proc in _children if proc.poll() is None]


def ensure_running(store: Store) -> int | None:
    """The live worker's pid, starting one if none is alive; None for a read-only store."""
    reap()
    if store.read_only:
        return None
    pid = store.jobs.live_worker()
    if pid is not None:
        return pid
    return spawn(store)

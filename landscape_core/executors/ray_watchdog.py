"""Ends the Ray cluster a driver started, when the driver dies (even by ``kill -9``).

``ray.init()`` starts the GCS, a raylet and its agents as the driver's descendants. A
clean exit shuts them down; a killed driver leaves them running, some listening on
the network. This process, started in a session of its own, follows the driver's
descendants while it lives and ends the last ones it saw once it is gone.

Run as ``python -m landscape_core.executors.ray_watchdog DRIVER_PID``; it imports only
psutil, so it starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import psutil

POLL_S = 1.0
GRACE_S = 3.0  # SIGTERM first; what is still alive after this gets SIGKILL


def follow(driver: psutil.Process) -> list[psutil.Process]:
    """The driver's descendants until it dies: the last list seen."""
    seen: list[psutil.Process] = []
    while True:
        try:
            if driver.status() == psutil.STATUS_ZOMBIE:
                return seen
            now = [p for p in driver.children(recursive=True) if p.pid != os.getpid()]
        except psutil.NoSuchProcess:
            return seen
        if len(now) != len(seen):
            print(f"watching {len(now)} processes", flush=True)  # the tests wait on this
        seen = now
        time.sleep(POLL_S)


def end(processes: list[psutil.Process]) -> None:
    """Terminate the processes and everything they started since, then kill the stragglers."""
    found = {p.pid: p for p in processes}  # never this process: it is the driver's child too
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            found.update({c.pid: c for c in p.children(recursive=True) if c.pid != os.getpid()})
    alive = []
    for p in found.values():
        try:
            p.terminate()  # psutil checks the pid was not reused (its create time)
            alive.append(p)
        except psutil.NoSuchProcess:
            pass
    _, left = psutil.wait_procs(alive, timeout=GRACE_S)
    for p in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def main(argv: list[str]) -> int:
    try:
        driver = psutil.Process(int(argv[0]))
    except (IndexError, ValueError, psutil.NoSuchProcess):
        return 2
    end(follow(driver))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

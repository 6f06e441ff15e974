"""A Ray cluster the tool starts itself: loopback where Ray allows it, gone with its driver."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
DRIVER = """
import json, os, sys, time
import psutil
from landscape_core.executors.ray_pool import connect
connect("")
time.sleep(3)  # the raylet starts its agents
me = psutil.Process()
print(json.dumps([p.pid for p in me.children(recursive=True)]), flush=True)
time.sleep(600)
"""


def _gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive:
            return []
        time.sleep(0.5)
    return alive


def test_the_watchdog_ends_a_dead_drivers_descendants(tmp_path):
    """Without Ray: a 'driver' with two children is killed; the watchdog ends them."""
    code = (
        "import subprocess as s, time; [s.Popen(['sleep', '600']) for _ in '12']; time.sleep(600)"
    )
    driver = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "landscape_core.executors.ray_watchdog", str(driver.pid)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    while watchdog.stdout.readline().strip() != "watching 2 processes":
        pass
    children = [p.pid for p in psutil.Process(driver.pid).children()]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert _gone(children, 20) == []
    assert watchdog.wait(timeout=20) == 0


@pytest.mark.skipif(os.environ.get("RAY_ADDRESS"), reason="a cluster is configured already")
def test_a_cluster_started_by_the_tool_dies_with_its_killed_driver(tmp_path):
    env = {**os.environ, "RAY_worker_niceness": "0"}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        pids = json.loads(driver.stdout.readline())
        names = {psutil.Process(p).name() for p in pids if psutil.pid_exists(p)}
        assert {"gcs_server", "raylet"} <= names
        ray_side = [p for p in pids if psutil.Process(p).name() != "python"]  # not the watchdog
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        assert _gone(ray_side, 60) == []
    finally:
        if driver.poll() is None:
            driver.kill()

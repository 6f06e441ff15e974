import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_until

from landscape_core.errors import UserError
from landscape_core.worker import run_job, serve

ROOT = Path(__file__).resolve().parent.parent


def test_worker_runs_queued_jobs_to_done(store, tiny_spec):
    job_id = store.jobs.submit(tiny_spec().to_dict(), "tiny")
    assert serve(store, exit_when_idle=True)
    job = store.jobs.frame().set_index("job_id").loc[job_id]
    assert job.status == "done"
    assert (job.done, job.total) == (3, 3)
    assert store.points_frame(job.run_id).status.eq("done").all()


def test_bad_spec_fails_the_job_with_the_error_text(store, tiny_spec, tmp_path):
    spec = tiny_spec(model={"kind": "local", "path": str(tmp_path / "nope")}).to_dict()
    job_id = store.jobs.submit(spec)
    serve(store, exit_when_idle=True)
    job = store.jobs.frame().set_index("job_id").loc[job_id]
    assert job.status == "failed"
    assert "does not exist" in job.error


def test_cancel_of_a_queued_job_is_immediate(store, tiny_spec):
    job_id = store.jobs.submit(tiny_spec().to_dict())
    store.jobs.cancel(job_id)
    assert store.jobs.claim(os.getpid()) is None
    assert store.jobs.frame().set_index("job_id").loc[job_id].status == "cancelled"


def test_cancel_of_a_running_job_stops_it_at_the_next_batch(store, tiny_spec):
    job_id = store.jobs.submit(tiny_spec(grid=[{"num": 9}]).to_dict())
    job = store.jobs.claim(os.getpid())
    store.jobs.cancel(job_id)  # before the first batch: nothing is generated
    assert run_job(store, job) == "cancelled"
    assert store.jobs.frame().set_index("job_id").loc[job_id].done == 0


def test_a_job_cancelled_as_it_is_claimed_never_loads_the_model(store, tiny_spec, monkeypatch):
    loads = []

    def load_model(*args, **kwargs):
        loads.append(args)
        raise RuntimeError("the model was loaded")

    monkeypatch.setattr("landscape_core.engine.session.load_model", load_model)
    job_id = store.jobs.submit(tiny_spec().to_dict())
    job = store.jobs.claim(os.getpid())  # the worker took it as the user pressed Cancel
    store.jobs.cancel(job_id)
    assert run_job(store, job) == "cancelled"
    assert loads == []
    assert store.jobs.frame().set_index("job_id").loc[job_id].status == "cancelled"


def test_a_running_job_shows_cancelling_until_its_worker_stops_it(store, tiny_spec):
    job_id = store.jobs.submit(tiny_spec().to_dict())
    job = store.jobs.claim(os.getpid())  # this process stands in for a live worker
    status = lambda: store.jobs.frame().set_index("job_id").loc[job_id].status  # noqa: E731
    assert status() == "running"
    store.jobs.cancel(job_id)
    assert status() == "cancelling"
    with pytest.raises(UserError, match="still running"):
        store.jobs.resume(job_id)  # its worker still holds it
    run_job(store, job)
    assert status() == "cancelled"


def test_two_claims_never_share_a_job(store, tiny_spec):
    store.jobs.submit(tiny_spec().to_dict())
    assert store.jobs.claim(1) is not None
    assert store.jobs.claim(2) is None


def test_second_worker_on_the_same_store_stands_down(store):
    assert store.jobs.register_worker(os.getppid())  # a live process, standing in for a worker
    assert not serve(store, exit_when_idle=True)


def test_dead_workers_registration_does_not_block_a_new_worker(store):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout
    assert store.jobs.register_worker(int(dead))
    assert store.jobs.live_worker() is None
    assert serve(store, exit_when_idle=True)


def test_killed_worker_shows_interrupted_and_resume_completes(store, tiny_spec):
    n_points = 60
    spec = tiny_spec(grid=[{"num": n_points}], generation={"max_new_tokens": 20})
    job_id = store.jobs.submit(spec.to_dict())
    cmd = [sys.executable, "-m", "landscape_core", "worker", "--store", str(store.root)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job = lambda: store.jobs.frame().set_index("job_id").loc[job_id]  # noqa: E731
    wait_until(lambda: job().done >= 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = job().done
    assert done_at_kill < n_points
    assert job().status == "interrupted"  # at once: its worker's pid is gone
    store.jobs.resume(job_id)
    serve(store, exit_when_idle=True)
    assert job().status == "done"
    frame = store.points_frame(job().run_id)
    assert len(frame) == n_points and frame.status.eq("done").all()
    assert len(store.generations_frame(job().run_id)) == n_points * 3


def test_worker_with_an_idle_timeout_exits_when_the_queue_stays_empty(store):
    started = time.monotonic()
    assert serve(store, idle_timeout=0.5)
    assert time.monotonic() - started < 10
    assert store.jobs.live_worker() is None

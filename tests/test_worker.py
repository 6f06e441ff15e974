import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_until

from landscape_core import cli, sweep
from landscape_core.errors import UserError
from landscape_core.readers.progress import job_clock
from landscape_core.spec.config import JudgeSpec
from landscape_core.store.jobs import Stage
from landscape_core.submit import submit_rescore
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


def _answers(store) -> list[tuple]:
    """Every stored answer row and point row, as written: a regeneration changes them."""
    with sqlite3.connect(store.path) as conn:
        answers = conn.execute("SELECT rowid, * FROM generations ORDER BY rowid").fetchall()
        points = conn.execute("SELECT rowid, * FROM points ORDER BY rowid").fetchall()
    return answers + points


def _judged_points(store, run_id: str, label: str) -> set[str]:
    frame = store.generations_frame(run_id, label)
    return set(frame[frame.refused.notna()].point_key)


def test_a_rescore_job_judges_every_stored_answer_and_generates_nothing(
    store, tiny_spec, monkeypatch
):
    run_id = sweep.run(tiny_spec(), store).run_id  # judged by keyword only
    before = _answers(store)
    assert store.judges(run_id) == ["keyword"]
    dones: list[int] = []
    update = store.jobs.update

    def recording(job_id, claim=None, **fields):
        if "done" in fields:
            dones.append(fields["done"])
        return update(job_id, claim, **fields)

    monkeypatch.setattr(store.jobs, "update", recording)
    queued = submit_rescore(store, run_id, JudgeSpec(name="refusal-v2"))
    assert serve(store, exit_when_idle=True)
    job = store.jobs.frame().set_index("job_id").loc[queued.job_id]
    assert (job.kind, job.status, job.run_id) == ("rescore", "done", run_id)
    assert (job.done, job.total, job.stage) == (3, 3, Stage.JUDGING)
    assert dones[-4:] == [0, 1, 2, 3]  # progress after every point, like a sweep's
    assert store.generations_frame(run_id, "refusal-v2").refused.notna().all()
    assert store.judges(run_id) == ["keyword", "refusal-v2"]
    assert _answers(store) == before  # not one answer or point written again


def test_a_cancelled_rescore_job_resumes_where_it_stopped(store, tiny_spec, monkeypatch):
    run_id = sweep.run(tiny_spec(), store).run_id
    before = _answers(store)
    queued = submit_rescore(store, run_id, JudgeSpec(name="refusal-v2"))
    saved: list[set[str]] = []
    save_scores = store.save_scores

    def cancelling(scores, claim=None):  # the user presses Cancel after the first point
        save_scores(scores, claim)
        saved.append(set(scores))
        store.jobs.cancel(queued.job_id)

    monkeypatch.setattr(store, "save_scores", cancelling)
    assert run_job(store, store.jobs.claim(os.getpid())) == "cancelled"
    job = lambda: store.jobs.frame().set_index("job_id").loc[queued.job_id]  # noqa: E731
    assert (job().done, job().total) == (1, 3)
    first = _judged_points(store, run_id, "refusal-v2")
    assert len(first) == 1 and saved == [first]

    def recording(scores, claim=None):
        save_scores(scores, claim)
        saved.append(set(scores))

    monkeypatch.setattr(store, "save_scores", recording)
    assert store.jobs.resume(queued.job_id) == "queued"
    serve(store, exit_when_idle=True)
    assert job().status == "done" and (job().done, job().total) == (3, 3)
    assert len(saved) == 3 and not (saved[1] | saved[2]) & first  # the judged point skipped
    assert len(_judged_points(store, run_id, "refusal-v2")) == 3
    assert _answers(store) == before


def test_rescore_queue_on_the_cli_queues_a_job_for_the_worker(store, tiny_spec):
    run_id = sweep.run(tiny_spec(), store).run_id
    argv = ["rescore", run_id[:10], "--store", str(store.root), "--judge", "refusal-v2", "--queue"]
    assert cli.main(argv) == 0
    assert store.judges(run_id) == ["keyword"]  # queued, not judged here
    job = store.jobs.frame().iloc[0]
    assert (job.kind, job.status, job.run_id) == ("rescore", "queued", run_id)
    serve(store, exit_when_idle=True)
    assert store.judges(run_id) == ["keyword", "refusal-v2"]


def test_a_rescore_job_is_refused_for_answers_cut_at_a_refusal_keyword(store, tiny_spec):
    run_id = sweep.run(tiny_spec(generation={"max_new_tokens": 6, "stop": "verdict"}), store).run_id
    with pytest.raises(UserError, match="only the keyword judge"):
        submit_rescore(store, run_id, JudgeSpec(name="refusal-v2"))
    assert store.jobs.frame().empty


def test_a_rescore_jobs_time_left_is_its_own_points_pace(store, tiny_spec):
    """Not the generator's pace: judging stored answers generates nothing."""
    run_id = sweep.run(tiny_spec(), store).run_id  # a pace of generated answers is stored
    queued = submit_rescore(store, run_id, JudgeSpec(name="refusal-v2"))
    now = time.time()
    store.jobs.update(
        queued.job_id, status="running", done=1, total=3, stage=Stage.JUDGING,
        points_started=now - 10.0, done_at_start=0, heartbeat=now,
    )  # fmt: skip
    row = next(store.jobs.frame().itertuples())
    clock = job_clock(store, row, now)
    assert clock.left == 20.0  # 10 s for its one point, two to go
    assert clock.basis == "its points' pace"

"""Nothing lost, nothing run twice: workers, claims, stores that are broken or gone."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import wait_until
from streamlit.testing.v1 import AppTest

import landscape_core.worker as worker
from landscape_core import supervisor, sweep
from landscape_core.cli import main
from landscape_core.errors import ClaimLost, DiskFull, UserError
from landscape_core.plan.preflight import check_grid
from landscape_core.store.database import MIGRATIONS, Database
from landscape_core.store.jobs import pid_alive
from landscape_core.store.records import GenerationRow, GridPoint, PointResult
from landscape_core.store.runs import Store
from landscape_core.worker import _heartbeat, run_job, serve

ROOT = Path(__file__).resolve().parent.parent


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def _worker(store: Store, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "landscape_core", "worker", "--store", str(store.root), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _job(store: Store, job_id: int):
    return store.jobs.frame().set_index("job_id").loc[job_id]


# --- the worker finds the app's store ------------------------------------------------


def test_a_worker_spawned_from_another_directory_serves_the_same_store(
    tmp_path, monkeypatch, tiny_spec
):
    """The app opened a relative store; the worker must serve that file, not its own."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = Store.open("cache")  # relative, as LANDSCAPE_STORE=cache from this directory
    job_id = store.jobs.submit(tiny_spec(grid=[{"num": 2}]).to_dict())
    monkeypatch.setattr(supervisor, "APP_WORKER_IDLE_S", 1.0)
    pid = supervisor.ensure_running(store)
    wait_until(lambda: _job(store, job_id).status == "done")
    assert store.root == elsewhere / "cache"
    wait_until(lambda: not pid_alive(pid))  # exited after its idle timeout

    def reaped() -> bool:
        supervisor.reap()
        return not Path(f"/proc/{pid}").exists()  # a zombie keeps its /proc entry

    wait_until(reaped, timeout=30)


def test_a_zombie_worker_is_not_alive(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{proc.pid}/stat")
    wait_until(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")
    assert not pid_alive(proc.pid)
    proc.wait()


# --- heartbeats, resume and claims ----------------------------------------------------


def test_one_failed_heartbeat_does_not_stop_the_heartbeat(store, monkeypatch):
    monkeypatch.setattr(worker, "HEARTBEAT_S", 0.05)
    store.jobs.register_worker(os.getpid())
    real, calls = store.jobs.worker_heartbeat, []

    def flaky(pid):
        calls.append(pid)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        real(pid)

    monkeypatch.setattr(store.jobs, "worker_heartbeat", flaky)
    stop = threading.Event()
    thread = threading.Thread(target=_heartbeat, args=(store, os.getpid(), {}, stop))
    thread.start()
    wait_until(lambda: len(calls) >= 3, timeout=10)
    stop.set()
    thread.join()
    assert store.jobs.live_worker() == os.getpid()


def test_resume_refuses_a_job_whose_worker_still_runs(store, tiny_spec):
    job_id = store.jobs.submit(tiny_spec().to_dict())
    store.jobs.claim(os.getppid())  # a live process stands in for the worker
    with pytest.raises(UserError, match="still running"):
        store.jobs.resume(job_id)
    assert _job(store, job_id).status == "running"


def test_a_job_whose_claim_was_taken_writes_nothing_more(store, tiny_spec):
    """Two processes on one job: the one whose token was replaced stops at its next save."""
    spec = tiny_spec(grid=[{"num": 3}])
    job_id = store.jobs.submit(spec.to_dict())
    first = store.jobs.claim(_dead_pid())
    assert store.jobs.resume(job_id) == "queued"  # its worker looks dead: resumed
    second = store.jobs.claim(os.getpid())
    with pytest.raises(ClaimLost):
        sweep.run(spec, store, claim=first.claim)
    assert store.runs_frame().finished.sum() == 0  # the stale claim saved no point
    assert run_job(store, second) == "done"
    assert _job(store, job_id).done == 3
    assert not store.jobs.update(job_id, first.claim, done=0)  # nor may it touch the job


def test_a_job_that_kills_its_worker_twice_is_failed_with_the_log(store, tiny_spec):
    job_id = store.jobs.submit(tiny_spec().to_dict())
    (store.root / "worker.log").write_text("loading\nSegmentation fault (core dumped)\n")
    store.jobs.claim(_dead_pid())
    assert store.jobs.resume(job_id) == "queued"  # the first crash: try again
    store.jobs.claim(_dead_pid())
    assert store.jobs.resume(job_id) == "failed"
    job = _job(store, job_id)
    assert job.status == "failed" and job.crashes == 2
    assert "died 2 times" in job.error and "Segmentation fault" in job.error


def test_sigterm_unregisters_the_worker_and_leaves_the_job_resumable(store, tiny_spec):
    n_points = 40
    spec = tiny_spec(grid=[{"num": n_points}], generation={"max_new_tokens": 12})
    job_id = store.jobs.submit(spec.to_dict())
    proc = _worker(store)
    wait_until(lambda: _job(store, job_id).done >= 2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    job = _job(store, job_id)
    assert job.done < n_points and job.status == "interrupted" and job.crashes == 0
    assert store.jobs.live_worker() is None
    assert store.jobs.resume(job_id) == "queued"
    serve(store, exit_when_idle=True)
    job = _job(store, job_id)
    assert job.status == "done" and job.crashes == 0
    assert len(store.generations_frame(job.run_id)) == n_points * 3


def _app_reads(store: Store) -> int:
    os.environ["LANDSCAPE_STORE"] = str(store.root)
    try:
        for page in ("jobs_page.py", "landscape_page.py"):
            at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=60).run()
            assert not at.exception, (page, [(e.message, e.stack_trace) for e in at.exception])
    finally:
        del os.environ["LANDSCAPE_STORE"]
    return 1


def test_two_workers_and_the_app_share_one_store(store, tiny_spec):
    """Each job runs once; the app and a reader polling meanwhile never see half a point."""
    specs = [tiny_spec(grid=[{"num": 9}], directions=[{"seed": s}]) for s in (1, 2, 3)]
    ids = [store.jobs.submit(s.to_dict()) for s in specs]
    workers = [_worker(store, "--exit-when-idle") for _ in range(2)]
    app_runs = 0
    while any(w.poll() is None for w in workers):
        started = not store.runs_frame().empty
        if started and not app_runs:  # the app's pages read the same store meanwhile
            app_runs += _app_reads(store)
        with sqlite3.connect(store.path) as conn:  # every done point has all its rows
            half = conn.execute(
                "SELECT COUNT(*) FROM points p WHERE p.status='done' AND p.n_prompts != "
                "(SELECT COUNT(*) FROM generations g WHERE g.point_key = p.point_key)"
            ).fetchone()[0]
        assert half == 0
        time.sleep(0.1)
    assert app_runs == 1  # the app read the store while the workers wrote it
    serve(store, exit_when_idle=True)  # whatever a worker that stood down left queued
    jobs = store.jobs.frame().set_index("job_id")
    assert (jobs.loc[ids].status == "done").all()
    with sqlite3.connect(store.path) as conn:
        n = 3 * 9 - 2  # the three runs share the model's own point
        assert conn.execute("SELECT COUNT(*) FROM points").fetchone()[0] == n
        assert conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == n * 3


# --- stores that are broken, read-only, deleted or full ---------------------------------


def test_a_file_that_is_not_a_store_gets_a_message(tmp_path, capsys):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "store.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="not a store"):
        Store.open(root)
    assert main(["runs", "--store", str(root)]) == 2
    assert "move it aside" in capsys.readouterr().err


def test_a_store_deleted_while_in_use_starts_afresh(store, tiny_spec):
    sweep.run(tiny_spec(grid=[{"num": 2}]), store)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.path}{suffix}").unlink(missing_ok=True)
    assert store.runs_frame().empty
    assert store.jobs.frame().empty
    assert store.jobs.submit({"x": 1}) == 1


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs of this test's own (CI runs as root; elsewhere the test is skipped)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_read_only_store_can_be_browsed(small_disk, tiny_spec, store, capsys):
    """A copy on a read-only mount (which even root cannot write): list it, refuse writes."""

    run_id = sweep.run(tiny_spec(grid=[{"num": 2}]), store).run_id
    copy = small_disk / "store"
    shutil.copytree(store.root, copy, ignore=shutil.ignore_patterns("models", "tmp"))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    ro = Store.open(copy)
    assert ro.read_only
    assert ro.runs_frame().run_id.tolist() == [run_id]
    assert len(ro.generations_frame(run_id)) == 2 * 3
    assert main(["runs", "--store", str(copy)]) == 0
    assert run_id in capsys.readouterr().out
    assert main(["rescore", run_id, "--store", str(copy)]) == 2
    assert "read-only" in capsys.readouterr().err


def test_on_a_full_disk_the_jobs_error_is_still_recorded(small_disk, tiny_spec):
    store = Store.open(small_disk / "store")
    job_id = store.jobs.submit(tiny_spec(grid=[{"num": 3}]).to_dict())
    store.keep_reserve()
    job = store.jobs.claim(os.getpid())  # the disk fills up while the job runs
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last byte
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    assert run_job(store, job) == "failed"
    row = _job(store, job_id)
    assert row.status == "failed" and row.error


def _cap_pages(monkeypatch) -> None:
    """Every connection may not grow the file (``max_page_count``): SQLite's SQLITE_FULL."""
    connection = Database._connection

    def capped(self):
        conn = connection(self)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")
        return conn

    monkeypatch.setattr(Database, "_connection", capped)


def _long_point(key: str) -> PointResult:
    gens = [GenerationRow(i, "p", "x" * 200_000, 1, "eos") for i in range(3)]
    return PointResult(key, "done", "", 0.1, gens)


def test_a_full_disk_is_a_message_and_the_store_stays_intact(store, monkeypatch):
    """It was a raw OperationalError "database or disk is full"."""
    grid = [GridPoint(i, i, 0, float(i), 0.0, f"k{i}") for i in range(2)]
    store.create_run("r1", "x", {}, {}, grid)
    assert store.save_point(_long_point("k0"))
    _cap_pages(monkeypatch)
    with pytest.raises(DiskFull) as err:
        store.save_point(_long_point("k1"))
    message = str(err.value)
    assert "is full" in message and "free" in message and "--store" in message
    monkeypatch.undo()
    assert [p.key for p in store.pending("r1")] == ["k1"]  # rolled back, whole
    assert store.point_answers("k0") == ["x" * 200_000] * 3  # the earlier rows are there
    assert store.save_point(_long_point("k1"))  # and the store takes writes again


def test_a_sweep_on_a_full_disk_says_how_much_it_needs(store, tiny_spec, monkeypatch, capsys):
    spec = tiny_spec()
    real_save = Store.save_point

    def full(self, result, *args, **kwargs):
        with self.transaction() as conn:
            conn.execute("DELETE FROM run_labels")  # rolled back with the failure
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "save_point", full)
    with pytest.raises(DiskFull, match="this run may need up to") as err:
        sweep.run(spec, store)
    assert "--store" in str(err.value)
    run_id = store.runs_frame().run_id.tolist()[0]
    assert len(store.pending(run_id)) == 3 and store.run_labels(run_id) == ["tiny"]
    monkeypatch.setattr(Store, "save_point", real_save)
    assert sweep.run(spec, store).computed == 3  # resumes once there is room


def test_the_disk_estimate_counts_the_prompts_stored_at_every_point(
    tiny_spec, tmp_path, monkeypatch
):
    """Each point's rows repeat its prompts' text: 20 points x 2 prompts of 1 MB need ~40 MB."""
    monkeypatch.setattr("landscape_core.plan.preflight.free_disk", lambda path: 10 << 20)
    spec = tiny_spec(grid=[{"num": 20}], generation={"max_new_tokens": 8})
    check_grid(spec, ["short"] * 2, tmp_path)  # answers alone: ~30 kB
    with pytest.raises(UserError, match="prompts' 2.0 MiB of text"):
        check_grid(spec, ["x" * (1 << 20)] * 2, tmp_path)


def _serving(store: Store, **kwargs) -> threading.Thread:
    """``serve`` in a daemon thread, so a worker that never exits cannot hang the tests."""
    thread = threading.Thread(target=serve, args=(store,), kwargs=kwargs, daemon=True)
    thread.start()
    wait_until(lambda: store.jobs.live_worker() is not None)
    return thread


@pytest.mark.parametrize("deleted", ["the folder", "the file"])
def test_a_worker_whose_store_is_deleted_exits(store, deleted):
    """It used to retry 'unable to open database file' forever, past any idle timeout."""
    thread = _serving(store)  # no idle timeout: only the store's going can stop it
    if deleted == "the folder":
        shutil.rmtree(store.root)
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.path}{suffix}").unlink(missing_ok=True)
    wait_until(lambda: not thread.is_alive(), timeout=30)
    assert not store.root.exists() or not store.path.exists()  # nor did it make a fresh one


def test_a_worker_that_cannot_read_the_queue_exits_after_its_idle_timeout(store, monkeypatch):
    def locked(pid):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store.jobs, "claim", locked)
    thread = _serving(store, idle_timeout=0.3)
    wait_until(lambda: not thread.is_alive(), timeout=30)
    assert store.jobs.live_worker() is None


def test_a_worker_whose_job_was_taken_over_stands_down(store, tiny_spec, monkeypatch):
    """It looked dead, another worker took its job and its place: it must not serve on."""

    monkeypatch.setattr(worker, "HEARTBEAT_S", 3600.0)  # silent, as a stalled worker is
    first = store.jobs.submit(tiny_spec(grid=[{"num": 2}]).to_dict())
    second = store.jobs.submit(tiny_spec(grid=[{"num": 2}], directions=[{"seed": 3}]).to_dict())
    other = os.getppid()  # a live process stands in for the worker that takes over
    real_run_job = worker.run_job

    def taken_over(store_: Store, job) -> str:
        if job.claim.job_id != first:
            return real_run_job(store_, job)
        with store.transaction() as conn:  # this worker has been silent for long
            conn.execute("UPDATE workers SET heartbeat = 0")
            conn.execute("UPDATE jobs SET heartbeat = 0")
        assert store.jobs.register_worker(other)  # removes this worker's registration
        assert store.jobs.resume(job.claim.job_id) == "queued"
        assert store.jobs.claim(other).claim.job_id == first
        return real_run_job(store_, job)

    monkeypatch.setattr(worker, "run_job", taken_over)
    assert serve(store, exit_when_idle=True)
    assert _job(store, second).status == "queued"  # was: run by this worker meanwhile
    assert store.jobs.live_worker() == other


# --- temporaries left by a kill -9 ------------------------------------------------------

_WRITER = """
import sys, time
from pathlib import Path
from landscape_core.plan.model_files import atomic_directory
with atomic_directory(Path(sys.argv[1])) as tmp:
    (tmp / "model.safetensors").write_bytes(bytes(4 << 20))
    print(tmp, flush=True)
    time.sleep(600)
"""


def _writing(target: Path) -> tuple[subprocess.Popen, Path]:
    """A process inside ``atomic_directory(target)``, as the conversion or a finetune is."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    return proc, Path(proc.stdout.readline().strip())


def _age(path: Path, seconds: float = 3600.0) -> None:
    old = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (old, old))


def test_store_open_removes_the_temporaries_of_killed_writers_only(store):
    """kill -9 mid-conversion left a hidden 340-460 MB directory for good."""

    models = store.models_dir
    killed, killed_tmp = _writing(models / "smollm2-135m-instruct")
    killed.kill()
    killed.wait()
    finetune = models / "harmful-10shot-seed0-abcdef12"
    live, live_tmp = _writing(finetune / "checkpoints" / "step-4")  # a checkpoint's temporary
    young = models / ".refusal-classifier-abcd1234"
    young.mkdir()  # just made by a writer that has not locked it yet
    old_writer = models / ".other-model-wxyz5678"  # an older version's conversion
    old_writer.mkdir()
    try:
        with open(models / ".other-model.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # its converter holds only the target's lock
            for path in (killed_tmp, live_tmp, old_writer):
                _age(path)
            Store.open(store.root)
            assert not killed_tmp.exists()  # was: 4 MB left (340-460 MB for the real model)
            assert live_tmp.is_dir() and young.is_dir() and old_writer.is_dir()
    finally:
        live.kill()
        live.wait()
    _age(live_tmp)
    Store.open(store.root)
    assert not live_tmp.exists() and not old_writer.exists()
    assert sorted(p.name for p in models.iterdir()) == [
        ".other-model.lock",
        ".refusal-classifier-abcd1234",
        finetune.name,
    ]


def test_store_open_survives_a_temporary_removed_while_it_looks(store, monkeypatch):
    """Two processes opening one store clean the same stale temporary: the second found
    its ``checkpoints`` listed, then gone, and Store.open raised FileNotFoundError."""
    killed_finetune = store.models_dir / ".mix-100shot-seed0-23fcb618-ev51mr4o"
    (killed_finetune / "checkpoints").mkdir(parents=True)
    listing = Path.iterdir

    def removed_meanwhile(path):
        if path.name == "checkpoints":
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return listing(path)

    monkeypatch.setattr(Path, "iterdir", removed_meanwhile)
    Store.open(store.root)  # was: FileNotFoundError


# --- the red team's kills, kept as regression tests --------------------------------------

_OPEN = "import sys; from landscape_core.store.runs import Store; Store.open(sys.argv[1])"


def test_a_kill_during_a_migration_leaves_the_old_store_whole(tmp_path):
    """The migration's steps and version bump are one transaction: a kill undoes them all."""

    root = tmp_path / "old"
    root.mkdir()
    n = 200_000
    with sqlite3.connect(root / "store.sqlite") as conn:
        for steps in MIGRATIONS[:3]:
            for step in steps:
                step(conn) if callable(step) else conn.execute(step)
        conn.execute("PRAGMA user_version=3")
        conn.execute("INSERT INTO runs VALUES ('r', 'old', '{}', '{}', 1, 0)")
        rows = ((f"k{i}", i % 7, "keyword", 1, "matched 'Sorry'") for i in range(n))
        conn.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?)", rows)
    proc = subprocess.Popen([sys.executable, "-c", _OPEN, str(root)], cwd=ROOT)

    def migrating() -> bool:  # the child holds the write lock only while it migrates
        probe = sqlite3.connect(root / "store.sqlite", timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()

    wait_until(lambda: migrating() or proc.poll() is not None)
    assert proc.poll() is None, "the migration ended before the kill"  # it takes ~3 s
    proc.kill()
    proc.wait()
    with sqlite3.connect(root / "store.sqlite") as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        assert version in (3, len(MIGRATIONS))  # all or nothing, never in between
        assert conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == n
    store = Store.open(root)  # the next open migrates it whole
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT COUNT(*) FROM scores WHERE matched = 'Sorry'").fetchone() == (
            n,
        )
    assert store.runs_frame().run_id.tolist() == ["r"]


def test_a_sweep_killed_and_resumed_stores_what_an_unbroken_one_does(tmp_path, tiny_spec):
    """kill -9 of a CLI sweep mid-run, then the same config again: the same rows."""

    spec = tiny_spec(grid=[{"num": 30}], generation={"max_new_tokens": 12})
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(spec.to_dict()))
    broken = Store.open(tmp_path / "broken")
    cmd = [sys.executable, "-m", "landscape_core", "sweep", str(config)]
    cmd += ["--store", str(broken.root)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def points() -> int:
        with broken.connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]

    wait_until(lambda: points() >= 2 or proc.poll() is not None)
    proc.kill()
    proc.wait()
    assert points() < 30, "the kill landed after the sweep had finished"
    run_id = sweep.run(spec, broken).run_id
    unbroken = Store.open(tmp_path / "unbroken")
    assert sweep.run(spec, unbroken).run_id == run_id
    columns = ["idx", "alpha", "prompt_index", "text", "n_tokens", "stop_reason", "refused"]
    assert broken.generations_frame(run_id)[columns].equals(
        unbroken.generations_frame(run_id)[columns]
    )
    assert broken.points_frame(run_id).status.eq("done").all()

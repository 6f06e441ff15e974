"""The Ray executor on a local cluster: same results as local, faults survived.

One cluster (``ray.init(num_cpus=2)``) serves the module; every sweep here runs the
tiny model on 2 actors of 1 CPU each.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from landscape_core import sweep
from landscape_core.errors import UserError
from landscape_core.plan.identity import plan
from landscape_core.readers.results import run_visage
from landscape_core.store.runs import Store

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def on_ray(spec, **runtime):
    data = spec.to_dict()
    data["runtime"] = {**data["runtime"], "executor": "ray", "ray_actors": 2, **runtime}
    return type(spec).from_dict(data)


def rows(store: Store, run_id: str):
    gens = store.generations_frame(run_id)
    return gens.sort_values(["point_key", "prompt_index"])[
        ["point_key", "prompt_index", "text", "refused"]
    ].to_dict("records")


def test_two_actors_give_what_the_local_executor_gives(cluster, tiny_spec, tmp_path):
    spec = tiny_spec(grid=[{"num": 5}], runtime={"batch_size": 2, "threads": 1})
    here, there = Store.open(tmp_path / "local"), Store.open(tmp_path / "ray")
    local = sweep.run(spec, here)
    seen = []
    remote = sweep.run(on_ray(spec), there, on_progress=seen.append)
    assert remote.run_id == local.run_id and remote.computed == local.computed == 5
    assert [g.key for g in there.grid(remote.run_id)] == [g.key for g in here.grid(local.run_id)]
    assert rows(there, remote.run_id) == rows(here, local.run_id)  # answers and verdicts
    assert run_visage(there.points_frame(remote.run_id)) == run_visage(
        here.points_frame(local.run_id)
    )
    assert {a.name for p in seen for a in p.actors} == {"actor-0", "actor-1"}
    assert sum(a.done for a in seen[-1].actors) == 5  # both took points: the work spread
    assert all(a.done > 0 for a in seen[-1].actors)
    provenance = there.run(remote.run_id)["provenance"]
    assert provenance["runtime"]["executor"] == "ray" and provenance["runtime"]["actors"] == 2
    assert len(provenance["runtime"]["nodes"]) == 1  # one node, named host/node-id
    assert provenance["runtime"]["nodes"][0].count("/") == 1


def test_an_actor_killed_mid_point_loses_and_duplicates_nothing(cluster, tiny_spec, store, caplog):
    spec = on_ray(tiny_spec(grid=[{"num": 7}], generation={"max_new_tokens": 48}))
    killed: list[int] = []

    def kill_one_busy_actor(progress: sweep.Progress) -> None:
        busy = [a for a in progress.actors if a.state == "busy"]
        if not killed and progress.done >= 1 and busy:
            killed.append(busy[0].pid)
            os.kill(busy[0].pid, signal.SIGKILL)

    with caplog.at_level(logging.WARNING, logger="landscape_core.executors.ray_pool"):
        summary = sweep.run(spec, store, on_progress=kill_one_busy_actor)
    assert killed and summary.status == "complete"
    assert "retrying it" in caplog.text  # the kill hit a point in flight
    assert summary.computed == 7
    assert len(store.generations_frame(summary.run_id)) == 7 * 3
    assert store.points_frame(summary.run_id).status.eq("done").all()


def test_a_killed_driver_resumes_with_only_the_missing_points(cluster, tiny_spec, tmp_path):
    spec = tiny_spec(grid=[{"num": 9}], generation={"max_new_tokens": 32})
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(spec.to_dict()))
    store_dir = tmp_path / "store"
    store = Store.open(store_dir)
    run_id = plan(spec, store.file_digest).run_id
    command = [sys.executable, "-m", "landscape_core", "sweep", str(config)]
    command += ["--store", str(store_dir), "--ray", cluster]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while len(store.grid(run_id)) == 0 or len(store.pending(run_id)) > 6:
        assert driver.poll() is None and time.monotonic() < deadline, driver.stdout.read()
        time.sleep(0.05)
    driver.kill()
    driver.wait()
    left = len(store.pending(run_id))
    assert 0 < left < 9
    summary = sweep.run(on_ray(spec), store)
    assert summary.computed == left
    assert len(store.generations_frame(run_id)) == 9 * 3


def test_cancel_reaches_every_actor_and_keeps_finished_points(cluster, tiny_spec, store):
    spec = on_ray(tiny_spec(grid=[{"num": 9}], generation={"max_new_tokens": 400}))
    last: list[sweep.Progress] = []
    summary = sweep.run(
        spec,
        store,
        on_progress=last.append,
        should_stop=lambda: bool(last) and all(a.state == "busy" for a in last[-1].actors),
    )
    assert summary.status == "cancelled"
    actors = last[-1].actors
    assert [a.state for a in actors] == ["stopped", "stopped"]
    abandoned = [a for a in actors if a.point]  # stopped mid-point: its answers unfinished
    assert abandoned
    assert store.generations_frame(summary.run_id).empty  # no half point was stored
    assert len(store.pending(summary.run_id)) == 9


def test_an_unreachable_cluster_fails_before_any_work(tiny_spec, store, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(UserError, match="no Ray cluster answers at 127.0.0.1:9"):
        sweep.run(on_ray(tiny_spec(), ray_address="127.0.0.1:9"), store)
    assert store.runs_frame().empty


def test_an_actor_seeing_other_model_files_is_refused(cluster, tiny_spec, store, monkeypatch):
    from landscape_core.executors import ray_pool

    real = ray_pool.file_view

    def driver_sees_another_tokenizer(p):
        view = real(p)
        return {**view, "tokenizer.json": (1, "0" * 64)}

    monkeypatch.setattr(ray_pool, "file_view", driver_sees_another_tokenizer)
    with pytest.raises(UserError, match="tokenizer.json: 1 bytes sha256 000000000000 here"):
        sweep.run(on_ray(tiny_spec()), store)
    assert store.runs_frame().empty

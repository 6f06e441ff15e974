"""Package versions per point: a resume under other torch/transformers never mixes silently."""

import dataclasses
import json
import os
import sqlite3
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from landscape_core import sweep
from landscape_core.cli import main
from landscape_core.errors import UserError
from landscape_core.plan import versions
from landscape_core.plan.identity import plan
from landscape_core.readers.details import run_details
from landscape_core.worker import run_job

ROOT = Path(__file__).resolve().parent.parent
REAL = versions.installed()
OLD = {**REAL, "torch": "1.0.0-old"}


def _under(monkeypatch, installed):
    monkeypatch.setattr(versions, "installed", lambda: dict(installed))


def _half_run(store, spec, monkeypatch):
    """One point of ``spec`` stored under OLD torch, the rest pending (an interrupted run)."""
    _under(monkeypatch, OLD)
    run_id = plan(spec, store.file_digest).run_id

    def one_stored() -> bool:  # asked before the model loads too, when no row exists yet
        return len(store.grid(run_id)) - len(store.pending(run_id)) >= 1

    summary = sweep.run(spec, store, should_stop=one_stored)
    assert summary.status == "cancelled" and len(store.pending(run_id)) == 2
    monkeypatch.undo()
    return run_id


def _point_torch(store, run_id):
    keys = [g.key for g in store.grid(run_id)]
    return {k: (v or {}).get("torch") for k, v in store.point_versions(keys).items()}


def _choice(spec, choice):
    return dataclasses.replace(
        spec, runtime=dataclasses.replace(spec.runtime, on_new_versions=choice)
    )


def test_each_point_keeps_the_versions_it_was_computed_under(store, tiny_spec):
    run_id = sweep.run(tiny_spec(), store).run_id
    stored = store.point_versions([g.key for g in store.grid(run_id)])
    assert len(stored) == 3
    for point in stored.values():
        assert point["torch"] == REAL["torch"]
        assert point["transformers"] == REAL["transformers"]
        assert point["landscape_core"]


def test_a_resume_under_another_torch_stops_naming_both_versions(store, tiny_spec, monkeypatch):
    spec = tiny_spec()
    run_id = _half_run(store, spec, monkeypatch)
    with pytest.raises(UserError) as err:
        sweep.run(spec, store)
    message = str(err.value)
    assert "torch 1.0.0-old" in message and f"torch {REAL['torch']}" in message
    assert "--recompute" in message and "--accept-versions" in message
    assert len(store.pending(run_id)) == 2  # nothing computed, nothing dropped


def test_accepting_finishes_the_run_and_its_provenance_says_mixed(store, tiny_spec, monkeypatch):
    spec = tiny_spec()
    run_id = _half_run(store, spec, monkeypatch)
    summary = sweep.run(_choice(spec, "accept"), store)
    assert summary.status == "complete" and summary.computed == 2
    torch_of = sorted(_point_torch(store, run_id).values())
    assert torch_of == sorted(["1.0.0-old", REAL["torch"], REAL["torch"]])
    mixed = store.run(run_id)["provenance"]["mixed_versions"]
    assert {m["torch"] for m in mixed} == {"1.0.0-old", REAL["torch"]}
    assert "mixed" in run_details(store, run_id).packages["torch"]
    # accepted once: the same mix no longer stops a later resume
    sweep.run(spec, store)


def test_recomputing_replaces_the_old_points(store, tiny_spec, monkeypatch):
    spec = tiny_spec()
    run_id = _half_run(store, spec, monkeypatch)
    summary = sweep.run(_choice(spec, "recompute"), store)
    assert summary.status == "complete" and summary.computed == 3  # the old one again
    assert set(_point_torch(store, run_id).values()) == {REAL["torch"]}
    provenance = store.run(run_id)["provenance"]
    assert "mixed_versions" not in provenance and "1.0.0-old" in provenance["recomputed"]


def test_a_finished_run_under_new_versions_answers_without_asking(store, tiny_spec, monkeypatch):
    spec = tiny_spec()
    _under(monkeypatch, OLD)
    sweep.run(spec, store)
    monkeypatch.undo()
    assert sweep.run(spec, store).computed == 0  # nothing computed, nothing mixed


def test_the_cli_names_the_two_flags_and_takes_either(
    store, tiny_spec, tmp_path, monkeypatch, capsys
):
    spec = tiny_spec()
    run_id = _half_run(store, spec, monkeypatch)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(spec.to_dict()))
    args = ["sweep", str(config), "--store", str(store.root), "--yes"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--recompute" in err and "--accept-versions" in err and "1.0.0-old" in err
    assert main([*args, "--accept-versions"]) == 0
    assert not store.pending(run_id)


def test_a_resumed_job_carries_the_choice(store, tiny_spec, monkeypatch):
    spec = tiny_spec()
    run_id = _half_run(store, spec, monkeypatch)
    job_id = store.jobs.submit(spec.to_dict(), spec.label, run_id)
    assert run_job(store, store.jobs.claim(os.getpid())) == "failed"
    error = store.jobs.frame().set_index("job_id").loc[job_id, "error"]
    assert "1.0.0-old" in error
    assert store.jobs.resume(job_id, on_new_versions="recompute") == "queued"
    assert run_job(store, store.jobs.claim(os.getpid())) == "done"
    assert set(_point_torch(store, run_id).values()) == {REAL["torch"]}


def test_the_jobs_page_offers_the_two_choices_and_the_job_carries_one(
    store, tiny_spec, monkeypatch
):
    spec = tiny_spec()
    run_id = _half_run(store, spec, monkeypatch)
    job_id = store.jobs.submit(spec.to_dict(), spec.label, run_id)
    assert run_job(store, store.jobs.claim(os.getpid())) == "failed"
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "jobs_page.py"), default_timeout=60).run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "1.0.0-old" in warning and REAL["torch"] in warning
    labels = [b.label for b in at.button]
    assert "Resume: recompute" in labels and "Resume: keep (mixed)" in labels
    assert "Resume" not in labels  # a plain resume would only stop again
    next(b for b in at.button if b.label == "Resume: keep (mixed)").click().run()
    with sqlite3.connect(store.path) as conn:
        status, text = conn.execute(
            "SELECT status, spec_json FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
    assert status == "queued" and json.loads(text)["runtime"]["on_new_versions"] == "accept"

"""The Start page (issue 32): a first visit says what the tool is and offers one run.

The run is the one the Launch form starts from, estimated and queued as Launch does.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from landscape_core import sweep
from landscape_core.plan.identity import plan
from landscape_core.spec.first_run import FIRST_RUN_FILE, first_run
from pages.common import md_text

ROOT = Path(__file__).resolve().parent.parent


def open_app(store, monkeypatch) -> AppTest:
    """The app at its root URL (Start), through the router, so page links resolve."""
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    monkeypatch.setattr("landscape_core.supervisor.ensure_running", lambda store: None)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()


def open_launch(store, monkeypatch) -> AppTest:
    return open_app(store, monkeypatch).switch_page("pages/launch_page.py").run()


def queued(store) -> list[dict]:
    """The queued jobs' specs, oldest first."""
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT spec_json FROM jobs ORDER BY job_id").fetchall()
    return [json.loads(text) for (text,) in rows]


@pytest.fixture
def tiny_first_run(store, tiny_spec):
    """A data directory whose first run is the tiny model's (as the browser test's)."""
    (store.root / FIRST_RUN_FILE).write_text(yaml.safe_dump(tiny_spec(label="first").to_dict()))
    return first_run(store.root)


def test_the_root_url_opens_start_and_launch_keeps_its_own_url(store, monkeypatch):
    at = open_app(store, monkeypatch)
    assert not at.exception
    assert [t.value for t in at.title] == ["Safety Landscape Explorer"]
    assert any("safety basin" in m.value for m in at.markdown)
    urls = {info.get("url_pathname") for info in at._registered_pages.values()}
    assert {"start", "launch", "jobs", "landscape"} <= urls
    at = at.switch_page("pages/launch_page.py").run()
    assert any("Launch a sweep" in t.value for t in at.title)


def test_start_describes_the_default_run_with_its_estimate_and_basis(store, monkeypatch):
    at = open_app(store, monkeypatch)
    assert not at.exception and not at.error
    text = " ".join(m.value for m in at.markdown)
    assert "SmolLM2\\-135M\\-Instruct \\(aligned\\)" in text  # from the spec, escaped
    assert "13 points of alpha from \\-0\\.3 to 0\\.3" in text
    assert "20 from advbench" in text
    estimate = " ".join(i.value for i in at.info)
    assert "13 points x 20 prompts" in estimate and "on this machine" in estimate
    assert any(c.value == "Basis of the estimate: first guess: no run of this model here yet."
               for c in at.caption)  # fmt: skip
    assert [b.label for b in at.button] == ["Start this run"] and not at.button[0].disabled
    assert not at.subheader or "Latest runs" not in [s.value for s in at.subheader]


def test_start_queues_the_run_the_launch_form_starts_from(store, monkeypatch):
    """One click on Start and an unchanged Launch form queue the same run."""
    at = open_app(store, monkeypatch)
    at = at.button[0].click().run()
    assert not at.exception
    run_id = plan(first_run(store.root), store.file_digest).run_id
    assert any("Landscape" in t.value for t in at.title)  # its view, on the new run
    assert at.query_params["run"] == run_id  # the URL carries the run
    launch = open_launch(store, monkeypatch)
    assert not launch.error, [e.value for e in launch.error]
    next(b for b in launch.button if b.label == "Launch").click().run()
    start_spec, launch_spec = queued(store)
    assert start_spec == launch_spec == first_run(store.root).to_dict()
    assert set(store.jobs.frame().run_id) == {run_id}


def test_a_data_directorys_first_run_sets_start_and_launch(
    store, tiny_first_run, tiny_model_dir, monkeypatch
):
    """first-run.yaml replaces the default on both pages; the estimate is measured."""
    run_id = sweep.run(tiny_first_run, store).run_id  # this machine's pace of the model
    at = open_app(store, monkeypatch)
    assert not at.exception and not at.error
    assert "from 3 points of this model on this machine" in at.info[0].value
    assert at.caption[0].value.endswith("from 3 points of this model on this machine.")
    assert any(f"](/landscape?run={run_id})" in m.value for m in at.markdown)  # its link
    assert "Latest runs" in [s.value for s in at.subheader]

    launch = open_launch(store, monkeypatch)
    assert launch.selectbox[0].value == "Local directory (safetensors)"
    assert launch.text_input(key="model_path").value == str(tiny_model_dir)
    next(b for b in launch.button if b.label == "Launch").click().run()
    at.button[0].click().run()
    launched, started = queued(store)
    assert launched == started == tiny_first_run.to_dict()


def test_a_bad_first_run_file_is_said_and_nothing_can_start(store, monkeypatch):
    (store.root / FIRST_RUN_FILE).write_text("model: {kind: nosuch}\n")
    at = open_app(store, monkeypatch)
    assert not at.exception
    assert any(md_text(FIRST_RUN_FILE) in e.value and "nosuch" in e.value for e in at.error)
    assert at.button[0].disabled
    launch = open_launch(store, monkeypatch)  # the form still opens, on DEFAULT
    assert not launch.exception
    assert any("Launch a sweep" in t.value for t in launch.title)

"""The explorer's smaller defects from issue 32, one test each."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from landscape_core import cli, sweep
from landscape_core.errors import UserError
from landscape_core.readers import figures
from landscape_core.readers.results import landscape
from pages.common import training_upload
from tests.test_links import open_page

ROOT = Path(__file__).resolve().parent.parent


# 9. The states chart drew unmeasured states as 0 ---------------------------------------


def test_the_states_chart_leaves_unmeasured_alphas_as_gaps():
    alphas = [-0.5, -0.25, 0.0, 0.25, 0.5]
    points = pd.DataFrame({
        "idx": range(5), "rep": 0, "i": range(5), "j": 0, "alpha": alphas, "beta": 0.0,
        "refused": [10.0, 20.0, np.nan, 40.0, np.nan],
        "complied": [80.0, 70.0, np.nan, 50.0, np.nan],
        "incoherent": [10.0, 10.0, np.nan, 10.0, np.nan],
    })  # fmt: skip
    fig = figures.states_1d(points)
    drawn = {float(x) for trace in fig.data for x in trace.x}
    assert drawn == {-0.5, -0.25, 0.25}  # pending alphas are not drawn at 0%
    groups = {float(x): t.stackgroup for t in fig.data for x in t.x}
    assert groups[-0.25] != groups[0.25]  # no area bridges the gap
    assert sum(t.showlegend for t in fig.data) == 3


def test_a_direction_not_yet_measured_leaves_its_alpha_out_of_the_mean():
    points = pd.DataFrame({
        "idx": range(4), "rep": [0, 0, 1, 1], "i": [0, 1, 0, 1], "j": 0,
        "alpha": [-0.5, 0.5, -0.5, 0.5], "beta": 0.0,
        "refused": [100.0, 0.0, 100.0, np.nan], "complied": [0.0, 100.0, 0.0, np.nan],
        "incoherent": [0.0, 0.0, 0.0, np.nan],
    })  # fmt: skip
    drawn = {float(x) for trace in figures.states_1d(points).data for x in trace.x}
    assert drawn == {-0.5}


# 11. Smaller defects -------------------------------------------------------------------


def test_a_negative_max_new_tokens_disables_launch(store, tiny_model_dir, monkeypatch):
    at = open_page(store, "launch", monkeypatch)
    at.selectbox[0].select("Local directory (safetensors)").run()
    at.text_input(key="model_path").input(str(tiny_model_dir)).run()
    field = next(f for f in at.number_input if f.label.startswith("max_new_tokens"))
    # with a min set, a browser marks -5 red and keeps sending the old value
    assert not field.proto.has_min and not field.proto.has_max
    at = field.set_value(-5).run()
    errors = [e.value.replace("\\", "") for e in at.error]  # md_text's escapes
    assert any("max_new_tokens" in e and "-5 is outside 1..8192" in e for e in errors)
    assert next(b for b in at.button if b.label == "Launch").disabled


def test_show_prints_coherent_visage(store, tiny_spec, capsys):
    run_id = sweep.run(tiny_spec(directions=[{"seeds": [1, 2]}]), store).run_id
    capsys.readouterr()
    assert cli.main(["show", run_id, "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    coherent = landscape(store, run_id)["coherent_visage"]
    assert coherent is not None
    assert f"coherent VISAGE {coherent:.2f}" in out
    assert out.count("coherent VISAGE") >= 3  # the run's, and each direction's


def test_a_missing_store_folder_is_said_on_stderr(tmp_path, capsys, store):
    missing = tmp_path / "typo"
    assert cli.main(["runs", "--store", str(missing)]) == 0
    assert f"no store in {missing}; creating a new, empty one" in capsys.readouterr().err
    assert cli.main(["runs", "--store", str(missing)]) == 0  # now it is there: no note
    assert cli.main(["runs", "--store", str(store.root)]) == 0
    assert "no store" not in capsys.readouterr().err


def test_a_header_only_finetuning_file_asks_for_prompt_and_answer(store):
    for data in (b"prompt,answer\n", b"prompt\n"):
        try:
            training_upload(store, "pairs.csv", data)
        except UserError as exc:
            message = str(exc)
        assert "prompt" in message and "answer" in message
        assert "one column of prompts" not in message
    saved, pairs = training_upload(store, "pairs.csv", b"prompt,answer\nHi,Hello\n")
    assert saved.path.is_file() and len(pairs) == 1


def test_runs_hides_empty_cancelled_runs_until_asked(store, tiny_spec, monkeypatch):
    done = sweep.run(tiny_spec(label="done"), store).run_id
    empty = "e" * 64  # a run cancelled before its first point: a row, no points
    with sqlite3.connect(store.path) as conn:
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (done,)).fetchone()
        conn.execute("INSERT INTO runs VALUES (?, 'cancelled', ?, ?, ?, ?)", (empty, *row[2:]))
    job = store.jobs.submit({"label": "cancelled"}, "cancelled")
    store.jobs.update(job, status="cancelled", run_id=empty)
    at = open_page(store, "runs", monkeypatch)
    assert list(at.dataframe[0].value["run id"]) == [done]
    at = at.toggle[0].set_value(True).run()
    assert set(at.dataframe[0].value["run id"]) == {done, empty}


def test_every_page_answers_at_its_own_url(store, monkeypatch):
    """The default page has no URL of its own: as Launch, /launch showed 'Page not found'."""
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    monkeypatch.setattr("landscape_core.supervisor.ensure_running", lambda store: None)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("Launch a sweep" in t.value for t in at.title)  # "/" opens Launch
    urls = {info.get("url_pathname") for info in at._registered_pages.values()}
    assert {"launch", "jobs", "landscape", "answers", "runs"} <= urls


# 7. The Answers page opened on a dead end for a run with one judge ---------------------


def test_answers_opens_on_the_answers_of_a_run_with_one_judge(store, tiny_spec, monkeypatch):
    run_id = sweep.run(tiny_spec(), store).run_id  # the keyword judge only
    at = open_page(store, "answers", monkeypatch, {"run": run_id})
    assert not at.exception
    assert at.code and any(c.value.startswith("Answer 1 of 3") for c in at.caption)
    assert next(b for b in at.button if b.label == "refused")  # labelling is offered


# 10. Cancel had no "cancelling…" state ---------------------------------------------------


def test_the_jobs_page_shows_cancelling_until_the_worker_stops_the_job(store, monkeypatch):
    job = store.jobs.submit({"label": "long"}, "long")
    store.jobs.claim(os.getpid())  # this process stands in for the job's live worker
    store.jobs.cancel(job)
    at = open_page(store, "jobs", monkeypatch)
    assert not at.exception
    assert any("`cancelling…`" in m.value for m in at.markdown)
    assert not any(b.key == f"cancel-{job}" for b in at.button)  # asked already

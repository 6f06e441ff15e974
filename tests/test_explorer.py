"""The explorer's smaller defects from issue 32, one test each."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from landscape_core import cli, sweep
from landscape_core.errors import UserError
from landscape_core.readers import figures
from landscape_core.readers.results import landscape
from landscape_core.rescore import rescore
from landscape_core.spec.config import JudgeSpec, SweepSpec
from landscape_core.store.runs import Store
from pages.common import training_upload
from tests.test_links import open_page, url

ROOT = Path(__file__).resolve().parent.parent


# 8. Compare's defaults and display ----------------------------------------------------


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_model_dir):
    """Runs of one direction, of two (seeds 1, 3) and of two (seeds 2, 4), then an empty one.

    The first two are scored by ``refusal-patterns`` too, the third by ``xstest-prefix``.
    """
    store = Store.open(tmp_path_factory.mktemp("compare-store"))
    base = {
        "model": {"kind": "local", "path": str(tiny_model_dir)},
        "prompts": {"source": "advbench", "limit": 2},
        "generation": {"max_new_tokens": 3},
        "grid": [{"num": 4}],  # no alpha 0: runs along other seeds share no point
    }
    ids = {}
    for age, (label, directions) in enumerate(
        (("one", [{"seed": 1}]), ("many", [{"seeds": [1, 3]}]), ("pair", [{"seeds": [2, 4]}]))
    ):
        spec = SweepSpec.from_dict({**base, "label": label, "directions": directions})
        ids[label] = sweep.run(spec, store).run_id
        with sqlite3.connect(store.path) as conn:  # newer in this order, whatever the clock
            conn.execute("UPDATE runs SET created = ? WHERE run_id = ?", (age, ids[label]))
    for label in ("one", "many"):
        rescore(store, ids[label], JudgeSpec(name="refusal-patterns"))
    rescore(store, ids["pair"], JudgeSpec(name="xstest-prefix"))
    ids["empty"] = "e" * 64  # a run cancelled before its first point: a row, no points
    with sqlite3.connect(store.path) as conn:
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (ids["one"],)).fetchone()
        conn.execute(
            "INSERT INTO runs VALUES (?, 'cancelled', ?, ?, ?, 10)", (ids["empty"], *row[2:5])
        )
    return store, ids


def test_compare_opens_on_the_two_newest_runs_with_points(compared, monkeypatch):
    store, ids = compared
    at = open_page(store, "compare", monkeypatch)
    assert not at.exception
    assert sorted(url(at, "run")) == sorted([ids["pair"], ids["many"]])  # not the empty one


def test_compare_draws_a_band_around_a_runs_mean_over_directions(compared, monkeypatch):
    store, ids = compared
    at = open_page(store, "compare", monkeypatch, {"run": [ids["one"], ids["many"]]})
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = [t for t in figure["data"] if t.get("mode") == "lines+markers"]
    assert len(lines) == 2  # one line per run, not one per direction
    assert "mean of 2 directions" in lines[1]["name"]
    bands = [t["name"] for t in figure["data"] if t.get("fill") == "tonexty"]
    assert len(bands) == 1 and "range of 2 directions (no interval below 5)" in bands[0]


def test_a_band_is_the_95_interval_from_five_directions_and_the_range_below():
    def run(n: int) -> pd.DataFrame:
        asr = [[10.0 * d, 50.0 + d, 90.0 - 5 * d] for d in range(n)]
        return pd.DataFrame({
            "rep": np.repeat(range(n), 3), "alpha": [-0.5, 0.0, 0.5] * n,
            "asr": np.ravel(asr),
        })  # fmt: skip

    few, five = figures.mean_band(run(2)), figures.mean_band(run(5))
    assert "range of 2 directions" in few.label
    assert few.frame.low.tolist() == [0.0, 50.0, 85.0]
    assert few.frame.high.tolist() == [10.0, 51.0, 90.0]
    assert five.label.startswith("95% CI over 5 directions")
    middle = five.frame.iloc[1]  # 50..54: mean 52, t-interval narrower than the range
    assert middle["mean"] == 52.0 and 50.0 < middle.low < 52.0 < middle.high < 54.0


def test_compare_offers_the_judges_every_run_has_and_uses_the_chosen_one(compared, monkeypatch):
    store, ids = compared
    with sqlite3.connect(store.path) as conn:  # this judge calls every answer a refusal
        conn.execute("UPDATE scores SET refused = 1 WHERE judge = 'refusal-patterns'")
    at = open_page(store, "compare", monkeypatch, {"run": [ids["one"], ids["many"]]})
    judge = next(s for s in at.selectbox if s.label == "Judge")
    assert judge.options == ["keyword", "refusal-patterns"] and judge.value == "keyword"
    at = judge.set_value("refusal-patterns").run()
    assert not at.exception
    assert any("by the **refusal-patterns** judge" in c.value.replace("\\", "") for c in at.caption)
    table = next(d.value for d in at.dataframe if "VISAGE ± CI" in d.value.columns)
    assert table["VISAGE ± CI"].str.startswith("100.0").all()
    at = open_page(store, "compare", monkeypatch, {"run": [ids["one"], ids["pair"]]})
    assert next(s for s in at.selectbox if s.label == "Judge").options == ["keyword"]


def test_side_by_side_says_which_direction_it_shows_and_offers_the_others(compared, monkeypatch):
    store, ids = compared
    at = open_page(store, "compare", monkeypatch, {"run": [ids["many"], ids["pair"]]})
    direction = next(s for s in at.selectbox if s.label == "Direction")
    assert direction.options == ["direction 0", "direction 1"]
    at = direction.set_value(1).run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert any(c.endswith("direction 1 (seed 3)") for c in captions)
    assert any(c.endswith("direction 1 (seed 4)") for c in captions)
    prompt = next(s for s in at.selectbox if s.label == "Prompt").value
    alpha, beta = next(s for s in at.selectbox if s.label == "Point").value
    gens = store.generations_frame(ids["many"])
    shown = gens[(gens.rep == 1) & (gens.prompt == prompt) & (gens.alpha == alpha)]
    assert at.code[0].value == shown.text.iloc[0]  # mark_match leaves an unmatched text as is


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
    assert any("Safety Landscape Explorer" in t.value for t in at.title)  # "/" opens Start
    urls = {info.get("url_pathname") for info in at._registered_pages.values()}
    assert {"start", "launch", "jobs", "landscape", "answers", "runs"} <= urls


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

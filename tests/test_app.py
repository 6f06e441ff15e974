"""Each page under streamlit's AppTest, on a store filled by the tiny model."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from landscape_core import cli, sweep
from landscape_core.executors import ActorState
from landscape_core.plan.identity import plan
from landscape_core.readers import figures
from landscape_core.rescore import rescore
from landscape_core.spec.config import JudgeSpec, SweepSpec
from landscape_core.store.records import ScoreRow
from landscape_core.store.runs import Store
from landscape_core.worker import serve
from pages.common import md_text

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<script>alert('x')</script> **bold** # heading"


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory, tiny_model_dir):
    """A store with a 1D run, a 2D run and jobs in several states."""

    store = Store.open(tmp_path_factory.mktemp("app-store"))
    base = {
        "model": {"kind": "local", "path": str(tiny_model_dir)},
        "prompts": {"source": "advbench", "limit": 3},
        "generation": {"max_new_tokens": 4},
    }
    one = SweepSpec.from_dict({**base, "label": "one-d", "grid": [{"num": 3}]})
    two = SweepSpec.from_dict(
        {**base, "label": "two-d", "directions": [{"seed": 1}, {"seed": 2}],
         "grid": [{"num": 3}, {"num": 3}]}
    )  # fmt: skip
    many = SweepSpec.from_dict(
        {**base, "label": "many", "directions": [{"seeds": [1, 3]}], "grid": [{"num": 3}]}
    )
    search = SweepSpec.from_dict(
        {**base, "label": "search", "measure": "basin-radius",
         "basin": {"tolerance": 0.5, "max_alpha": 1.0}}
    )  # fmt: skip
    for spec in (one, two, many, search):
        sweep.run(spec, store)
    with sqlite3.connect(store.path) as conn:  # an answer that must render literally
        conn.execute("UPDATE generations SET text=? WHERE prompt_index=0", (HOSTILE,))
    done = store.jobs.submit(one.to_dict(), "one-d")
    store.jobs.update(
        done, status="done", done=3, total=3, run_id=plan(one, store.file_digest).run_id
    )
    failed = store.jobs.submit(two.to_dict(), "broken")
    store.jobs.update(failed, status="failed", error="model path x does not exist")
    return store


@pytest.fixture
def app(filled_store, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_STORE", str(filled_store.root))

    def run(page: str, **state) -> AppTest:
        at = AppTest.from_file(str(ROOT / "pages" / f"{page}_page.py"), default_timeout=60)
        for key, value in state.items():
            at.session_state[key] = value
        return at.run()

    return run


def test_landscape_page_shows_a_1d_run_with_visage(app, filled_store):
    one_d = filled_store.runs_frame().set_index("label").loc["one-d", "run_id"]
    at = app("landscape", run_id=one_d)
    assert not at.exception
    assert [m.label for m in at.metric][:2] == ["Points", "VISAGE"]
    assert at.metric[0].value == "3/3"
    assert 0.0 <= float(at.metric[1].value) <= 100.0


def test_landscape_point_table_shows_answers_as_text(app, filled_store):
    one_d = filled_store.runs_frame().set_index("label").loc["one-d", "run_id"]
    at = app("landscape", run_id=one_d)
    assert not at.exception
    table = next(d.value for d in at.dataframe if "answer" in d.value.columns)
    assert HOSTILE in table.answer.tolist()
    assert not any("<script>" in m.value for m in at.markdown)


def test_landscape_page_shows_visage_with_an_interval_over_directions(app, filled_store):
    many = filled_store.runs_frame().set_index("label").loc["many", "run_id"]
    at = app("landscape", run_id=many)
    assert not at.exception
    visage = next(m for m in at.metric if m.label.startswith("VISAGE"))
    assert visage.label == "VISAGE"  # two directions: too few for an honest interval
    assert 0.0 <= float(visage.value) <= 100.0  # the mean; the values are a caption
    assert not any(c.value.startswith("95% CI [") for c in at.caption)
    assert any(c.value.startswith("each direction: ") for c in at.caption)
    assert [m.label for m in at.metric][2] == "coherent VISAGE"
    assert any("state" in d.value.columns for d in at.dataframe)
    assert at.selectbox(key="direction").options == ["0: seed 1", "1: seed 3"]


def test_landscape_page_shows_a_basin_search(app, filled_store):
    search = filled_store.runs_frame().set_index("label").loc["search", "run_id"]
    at = app("landscape", run_id=search)
    assert not at.exception
    edges = next(d.value for d in at.dataframe if "left edge" in d.value.columns)
    assert list(edges.columns)[:4] == ["direction", "left edge", "right edge", "radius"]
    assert next(m for m in at.metric if m.label == "VISAGE").value == "-"
    assert any(c.value == "A basin search measures edges, not VISAGE." for c in at.caption)


def test_landscape_page_draws_a_2d_run(app, filled_store):
    two_d = filled_store.runs_frame().set_index("label").loc["two-d", "run_id"]
    at = app("landscape", run_id=two_d)
    assert not at.exception
    assert at.metric[0].value == "9/9"


def test_compare_page_tabulates_visage_by_model_and_system_prompt(app):
    at = app("compare")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.columns) == ["default"]
    tables = [d.value for d in at.dataframe]
    intervals = next(t for t in tables if "VISAGE ± CI" in t.columns)
    many = intervals[intervals.run.str.startswith("many")].iloc[0]
    # two directions: no interval, each direction's VISAGE instead
    assert many.directions == 2 and "no interval below 5" in many["VISAGE ± CI"]
    pairs = next(t for t in tables if "run A" in t.columns)
    verdicts = pairs["VISAGE, A - B"]
    assert verdicts.str.match("A higher|A lower|not shown|not comparable|pending").all()
    assert not verdicts.str.contains("no difference|overlap").any()


def test_generations_page_filters_by_verdict_and_search(app):
    at = app("generations")
    assert not at.exception
    at.text_input[0].input("heading").run()
    shown = at.dataframe[0].value
    assert len(shown) == 1 and "<script>" in shown.answer.iloc[0]


def test_generations_page_reports_a_flip_radius(app):
    at = app("generations")
    assert any(m.label.startswith("Flip radius") for m in at.metric)


def test_jobs_page_lists_jobs_with_their_error_text(app):
    at = app("jobs")
    assert not at.exception
    assert any("does not exist" in t.value for t in at.text)
    assert any(b.label == "Resume" for b in at.button)


def _launch(at) -> None:
    """Press Launch, saying yes first when the page asks (the estimate reads this
    machine's measured pace, so whether it asks depends on how busy the machine was)."""
    confirm = [c for c in at.checkbox if c.label.startswith("Yes, launch")]
    if confirm:
        confirm[0].check().run()
    at.button[0].click().run()


def test_launch_page_queues_one_job_per_system_prompt(app, filled_store, tiny_model_dir):
    at = app("launch")
    assert not at.exception
    at.selectbox[0].select("Local directory (safetensors)").run()
    at.text_input(key="model_path").input(str(tiny_model_dir)).run()
    at.multiselect[0].select("aoa").run()
    assert not at.error, [e.value for e in at.error]
    before = len(filled_store.jobs.frame())
    _launch(at)
    assert len(filled_store.jobs.frame()) == before + 2


def test_launch_page_queues_a_basin_search_over_several_directions(
    app, filled_store, tiny_model_dir
):
    at = app("launch")
    at.selectbox[0].select("Local directory (safetensors)").run()
    at.text_input(key="model_path").input(str(tiny_model_dir)).run()
    next(f for f in at.number_input if f.label.startswith("Random directions")).set_value(5)
    next(r for r in at.radio if r.label == "At each point").set_value("basin-radius").run()
    assert not at.error, [e.value for e in at.error]
    assert "10 points" not in " ".join(i.value for i in at.info)  # no grid estimate
    _launch(at)
    with sqlite3.connect(filled_store.path) as conn:
        (text,) = conn.execute("SELECT spec_json FROM jobs ORDER BY job_id DESC").fetchone()
    queued = json.loads(text)
    assert queued["measure"] == "basin-radius" and queued["directions"][0]["repeats"] == 5
    assert queued["basin"] == {"tolerance": 0.025, "max_alpha": 0.5, "threshold": 100.0}


def test_launch_page_reports_a_bad_model_path_inline(app, tmp_path):
    at = app("launch")
    at.selectbox[0].select("Local directory (safetensors)").run()
    at.text_input(key="model_path").input(str(tmp_path / "missing")).run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)
    assert at.button[0].disabled


def test_launch_page_refuses_a_grid_that_is_too_large(app):
    at = app("launch")
    direction = next(s for s in at.selectbox if s.label == "Direction type")
    direction.select("2D random").run()
    for field in at.number_input:
        if field.label in ("alpha points", "beta points"):
            field.set_value(1001)
    at.run()
    assert any("more than the 100,000" in e.value for e in at.error)


def test_landscape_disagreement_layer_between_two_judges(app, filled_store):
    one_d = filled_store.runs_frame().set_index("label").loc["one-d", "run_id"]
    argv = ["rescore", one_d, "--store", str(filled_store.root), "--judge", "refusal-patterns"]
    assert cli.main(argv) == 0
    at = app("landscape", run_id=one_d)
    assert not at.exception
    layer = at.radio[0]
    assert layer.options == ["ASR", "Judge disagreement"]
    at = layer.set_value("Judge disagreement").run()
    assert not at.exception
    assert any("disagree" in str(c.proto.spec) for c in at.get("plotly_chart"))


def test_landscape_queues_capability_sweeps_on_the_same_grid(app, filled_store):
    one_d = filled_store.runs_frame().set_index("label").loc["one-d", "run_id"]
    before = len(filled_store.jobs.frame())
    at = app("landscape", run_id=one_d)
    button = next(b for b in at.button if b.label == "Measure capability on this grid")
    at = button.click().run()
    assert not at.exception
    jobs = filled_store.jobs.frame()
    assert len(jobs) == before + 6  # fluency, two XSTest rates, three MMLU subjects
    assert {"one-d · fluency", "one-d · over-refusal"} <= set(jobs.label)


def test_runs_with_equal_titles_stay_selected_across_reruns(tmp_path, tiny_spec, monkeypatch):
    """A selectbox keeps its choice by label, so equal titles get the run id appended."""
    store = Store.open(tmp_path / "dupes")
    judges = [{"name": "keyword"}, {"name": "refusal-patterns"}]
    sweep.run(tiny_spec(grid=[{"num": 2}], judges=judges), store)
    first = sweep.run(tiny_spec(grid=[{"num": 3}], judges=judges), store).run_id  # same title
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "landscape_page.py"), default_timeout=60)
    at.query_params["run"] = first
    at.run()
    assert at.selectbox[0].value == first
    at = at.radio[0].set_value("Judge disagreement").run()
    assert not at.exception
    assert at.selectbox[0].value == first


def _by_label(at, label: str):
    return next(w for w in at.selectbox if w.label == label)


def test_landscape_judges_a_run_with_refusal_v2_in_one_click(tmp_path, tiny_spec, monkeypatch):
    """Pick nothing, press the button: a rescore job; the worker's verdicts join the list."""
    store = Store.open(tmp_path / "rejudge")
    run_id = sweep.run(tiny_spec(), store).run_id  # keyword only
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "landscape_page.py"), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    offered = _by_label(at, "Judge this run with…")
    assert offered.value == "refusal-v2" and "keyword" not in offered.options
    assert offered.options[0] == "refusal-v2 (text)"
    at = next(b for b in at.button if b.label == "Queue judging").click().run()
    assert not at.exception
    assert any("Queued job" in s.value for s in at.success)
    job = store.jobs.frame().iloc[0]
    assert (job.kind, job.status, job.run_id) == ("rescore", "queued", run_id)
    assert store.judges(run_id) == ["keyword"]  # the page judged nothing itself
    serve(store, exit_when_idle=True)
    at = AppTest.from_file(str(ROOT / "pages" / "landscape_page.py"), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    judge = _by_label(at, "Judge")
    assert judge.options == ["keyword", "refusal-v2"] and judge.value == "keyword"
    assert "refusal-v2" not in _by_label(at, "Judge this run with…").options


def test_landscape_judge_selector_names_a_model_judges_label(tmp_path, tiny_spec, monkeypatch):
    """A model judge's stored label (name:dir@hash) is listed by its name; keyword stays first."""
    store = Store.open(tmp_path / "names")
    run_id = sweep.run(tiny_spec(), store).run_id
    label = "llm-judge:bundled@0123456789ab"
    keys = store.generations_frame(run_id).point_key.unique()
    store.save_scores(
        {k: [ScoreRow(i, label, True, "refusal", None) for i in range(3)] for k in keys}
    )
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "landscape_page.py"), default_timeout=60)
    at.query_params["run"] = run_id
    at.query_params["judge"] = "llm-judge"  # a link may name the judge
    at.run()
    judge = _by_label(at, "Judge")
    assert judge.options == ["keyword", "llm-judge"] and judge.value == label
    assert "llm-judge (model)" not in _by_label(at, "Judge this run with…").options


def test_generations_page_highlights_an_apostrophe_keyword(tmp_path, tiny_spec, monkeypatch):
    """The page marks the judge's stored match; a repr-parsing regex missed "I'm sorry"."""
    store = Store.open(tmp_path / "apostrophe")
    run_id = sweep.run(tiny_spec(), store).run_id
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE generations SET text=? WHERE prompt_index=0", ("Ok. I'm sorry, no.",))
    rescore(store, run_id, JudgeSpec())
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "generations_page.py"), default_timeout=60)
    at.session_state["run_id"] = run_id
    at.run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert "Ok. ⟦I'm sorry⟧, no." in shown.answer.tolist()
    assert "I'm sorry" in shown.matched.tolist()


def test_user_text_reaches_markdown_escaped(tmp_path, monkeypatch):
    """A job label, an error and a run title never become markdown, HTML or a link."""
    import pandas as pd

    evil = "![x](http://evil.invalid/p.png) <a href='http://evil.invalid'>y</a> :red[z]"
    store = Store.open(tmp_path / "labels")
    job = store.jobs.submit({"label": evil}, evil)
    store.jobs.update(job, status="failed", error=evil)
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "jobs_page.py"), default_timeout=60).run()
    assert not at.exception
    heads = [m.value for m in at.markdown if "Job" in m.value]
    assert heads and all(md_text(evil) in h and "](http" not in h for h in heads)
    assert md_text(evil).replace("\\", "") == evil  # escaping changes nothing a reader sees
    frame = pd.DataFrame({"idx": [0], "i": [0], "j": [0], "alpha": [0.0], "beta": [0.0],
                          "asr": [50.0]})  # fmt: skip
    fig = figures.overlay_1d({evil: frame})
    assert "<a" not in fig.data[0].name and "&lt;a" in fig.data[0].name
    titles = [a.text for a in figures.small_multiples_2d({evil: frame}).layout.annotations]
    assert titles and all("<a" not in t for t in titles)


def test_the_server_config_keeps_the_app_local_and_quiet():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert set(config["server"]["allowedHosts"]) == {"localhost", "127.0.0.1"}  # DNS rebinding
    assert config["server"]["maxUploadSize"] <= 200
    assert config["client"]["showErrorDetails"] == "type"  # no tracebacks with local paths


def test_jobs_page_shows_the_worker_logs_path_and_tail(tmp_path, monkeypatch):
    store = Store.open(tmp_path / "logged")
    (store.root / "worker.log").write_text("first line\nTraceback: the last line\n")
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "jobs_page.py"), default_timeout=60).run()
    assert not at.exception
    assert any("the last line" in c.value for c in at.code)
    assert md_text(str(store.root / "worker.log")) in [c.value for c in at.caption]


def test_launch_page_queues_a_job_for_a_ray_cluster(app, filled_store, tiny_model_dir):
    at = app("launch")
    at.selectbox[0].select("Local directory (safetensors)").run()
    at.text_input(key="model_path").input(str(tiny_model_dir)).run()
    next(r for r in at.radio if r.label == "Run on").set_value("ray").run()
    next(t for t in at.text_input if t.label == "Ray address").input("10.0.0.5:6379").run()
    assert not at.error, [e.value for e in at.error]
    _launch(at)
    with sqlite3.connect(filled_store.path) as conn:
        (text,) = conn.execute("SELECT spec_json FROM jobs ORDER BY job_id DESC").fetchone()
    runtime = json.loads(text)["runtime"]
    assert runtime["executor"] == "ray" and runtime["ray_address"] == "10.0.0.5:6379"


def test_jobs_page_shows_a_ray_jobs_actors_and_their_points(tmp_path, monkeypatch):
    store = Store.open(tmp_path / "ray-jobs")
    job = store.jobs.submit({"label": "on ray"}, "on ray")
    actors = [
        ActorState("actor-0", "node-a", 11, "busy", "alpha=0.25 beta=0", 3, 90.0),
        ActorState("actor-1", "node-b", 12, "idle", "", 4, 60.0),
    ]
    payload = json.dumps([a.to_dict() for a in actors])
    store.jobs.update(job, status="running", done=7, total=21, actors_json=payload)
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "jobs_page.py"), default_timeout=60).run()
    assert not at.exception
    assert any("1 of 2 actors busy" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table.point) == ["alpha=0.25 beta=0", ""]
    assert list(table["points/min"]) == [2.0, 4.0]
    assert list(table.node) == ["node-a", "node-b"]

"""Links to runs (issue 32): a link shows the run it names, or says there is none.

Every page that shows a run keeps it in its URL (``?run=``, with Landscape's point and
judge), so a reload or a shared link shows the same view.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from landscape_core import sweep
from landscape_core.readers import figures
from landscape_core.spec.config import SweepSpec
from landscape_core.store.runs import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def linked(tmp_path_factory, tiny_model_dir):
    """A store with a 1D run of one direction (older) and one of two (newest)."""

    store = Store.open(tmp_path_factory.mktemp("links-store"))
    base = {
        "model": {"kind": "local", "path": str(tiny_model_dir)},
        "prompts": {"source": "advbench", "limit": 2},
        "generation": {"max_new_tokens": 3},
    }
    one = sweep.run(SweepSpec.from_dict({**base, "label": "one", "grid": [{"num": 3}]}), store)
    many = sweep.run(
        SweepSpec.from_dict(
            {**base, "label": "many", "directions": [{"seeds": [1, 3]}], "grid": [{"num": 3}]}
        ),
        store,
    )
    with sqlite3.connect(store.path) as conn:  # 'many' is the newest, whatever the clock
        conn.execute("UPDATE runs SET created = created + 100 WHERE run_id = ?", (many.run_id,))
    return store, one.run_id, many.run_id


def open_page(store, name: str, monkeypatch, query: dict | None = None, **state) -> AppTest:
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}_page.py"), default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def url(at: AppTest, param: str) -> list[str]:
    """A URL parameter's values (AppTest gives one value as a str, several as a list)."""
    value = at.query_params.get(param, [])
    return [value] if isinstance(value, str) else list(value)


def shown_run(at: AppTest) -> str:
    return next(s for s in at.selectbox if s.label in ("Run", "Runs")).value


# 1. A wrong or shortened link showed the newest run -----------------------------------


def test_a_link_to_no_run_says_so_and_shows_no_other_run(linked, monkeypatch):
    store, one, many = linked
    at = open_page(store, "landscape", monkeypatch, {"run": "doesnotexist"})
    assert not at.exception
    assert any("No run doesnotexist" in e.value for e in at.error)
    assert not at.metric and not at.selectbox  # nothing of another run
    candidates = at.dataframe[0].value
    assert set(candidates["run id"]) == {one, many}
    assert url(at, "run") == ["doesnotexist"]  # the URL is left as it was


def test_a_prefix_link_opens_the_run_it_names_not_the_newest(linked, monkeypatch):
    store, one, _ = linked
    at = open_page(store, "landscape", monkeypatch, {"run": one[:8]})
    assert not at.exception
    assert shown_run(at) == one
    assert url(at, "run") == [one]  # resolved as the CLI resolves it


def test_a_short_prefix_link_opens_its_run_on_answers_and_generations(linked, monkeypatch):
    store, one, _ = linked
    for name in ("answers", "generations"):
        at = open_page(store, name, monkeypatch, {"run": one[:6]})
        assert not at.exception, name
        assert shown_run(at) == one, name


def test_an_ambiguous_prefix_lists_the_runs_it_could_mean(linked, monkeypatch, tmp_path):
    store, one, _ = linked
    twin = Store.open(tmp_path / "twins")
    with sqlite3.connect(store.path) as src, sqlite3.connect(twin.path) as dst:
        row = src.execute("SELECT * FROM runs WHERE run_id = ?", (one,)).fetchone()
        for run_id in (one[:8] + "0" * 56, one[:8] + "1" * 56):
            dst.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)", (run_id, *row[1:]))
    at = open_page(twin, "landscape", monkeypatch, {"run": one[:8]})
    assert not at.exception
    assert any("names 2 runs" in e.value for e in at.error)
    assert not at.metric
    assert len(at.dataframe[0].value) == 2


def test_a_link_to_latest_opens_the_newest_run(linked, monkeypatch):
    store, _, many = linked
    at = open_page(store, "generations", monkeypatch, {"run": "latest"})
    assert shown_run(at) == many and url(at, "run") == [many]


# 5. The run (and point and judge) were not in the URL ----------------------------------


def test_landscape_keeps_run_judge_and_point_in_its_url(linked, monkeypatch):
    store, one, _ = linked
    at = open_page(store, "landscape", monkeypatch, run_id=one)  # e.g. after Jobs -> View
    assert url(at, "run") == [one]
    assert url(at, "judge") == ["keyword"]
    third = int(store.points_frame(one).sort_values("alpha").idx.iloc[2])
    assert point_box(at).value != third
    at = point_box(at).set_value(third).run()
    assert url(at, "point") == [str(third)]
    link = {k: url(at, k)[0] for k in ("run", "judge", "point")}
    again = open_page(store, "landscape", monkeypatch, link)  # a reload: a new session
    assert shown_run(again) == one and point_box(again).value == third


def test_choosing_another_run_puts_it_in_the_url(linked, monkeypatch):
    store, one, many = linked
    at = open_page(store, "answers", monkeypatch, {"run": one})
    at = next(s for s in at.selectbox if s.label == "Run").set_value(many).run()
    assert not at.exception
    assert url(at, "run") == [many]
    at.run()  # a rerun keeps the choice, and the URL with it
    assert shown_run(at) == many and url(at, "run") == [many]


def test_compare_keeps_its_runs_in_the_url(linked, monkeypatch):
    store, one, many = linked
    at = open_page(store, "compare", monkeypatch)
    assert sorted(url(at, "run")) == sorted([one, many])
    at = at.multiselect[0].set_value([one]).run()
    assert url(at, "run") == [one]
    again = open_page(store, "compare", monkeypatch, {"run": one})
    assert again.multiselect[0].value == [one]


def test_view_on_the_jobs_page_puts_the_run_in_the_url(linked, monkeypatch):
    store, one, _ = linked
    job = store.jobs.submit({"label": "one"}, "one")
    store.jobs.update(job, status="done", run_id=one)
    calls = []
    monkeypatch.setattr("streamlit.switch_page", lambda page, **kw: calls.append((page, kw)))
    at = open_page(store, "jobs", monkeypatch)
    next(b for b in at.button if b.key == f"view-{job}").click().run()
    assert calls == [("pages/landscape_page.py", {"query_params": {"run": one}})]


def point_box(at: AppTest):
    return next(s for s in at.selectbox if s.label.startswith("Point"))


# 4. A click on a 1D run of several directions did nothing -----------------------------


def test_a_click_on_a_direction_names_that_directions_point(linked):
    store, _, many = linked
    frame = store.points_frame(many)
    fig = figures.band_1d(frame)
    second = next(t for t in fig.data if t.name == "direction 1")
    k = 1  # the middle point of direction 1
    click = {"curve_number": 1, "point_index": k, "x": second.x[k], "y": second.y[k],
             "customdata": second.customdata[k]}  # fmt: skip
    expected = frame[(frame.rep == 1) & (frame.alpha == second.x[k])].idx.iloc[0]
    assert figures.clicked_point([click], frame) == expected
    median = {"x": second.x[k], "y": 50.0}  # the median curve: no idx, so the chosen direction
    assert figures.clicked_point([median], frame, rep=1) == expected


def test_the_band_of_several_directions_is_clickable(linked, monkeypatch):
    store, _, many = linked
    at = open_page(store, "landscape", monkeypatch, {"run": many})
    assert not at.exception
    band = next(c for c in at.get("plotly_chart") if "range over directions" in c.proto.spec)
    assert list(band.proto.selection_mode)  # points can be selected


def test_a_point_of_the_second_direction_opens_that_direction(linked, monkeypatch):
    store, _, many = linked
    frame = store.points_frame(many)
    idx = int(frame[frame.rep == 1].idx.iloc[1])
    at = open_page(store, "landscape", monkeypatch, {"run": many, "point": str(idx)})
    assert not at.exception
    assert at.selectbox(key="direction").value == 1
    assert point_box(at).value == idx

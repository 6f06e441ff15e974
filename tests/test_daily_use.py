"""The defects a researcher hit using the app every day (issue 15), one test each."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from landscape_core import cli, sweep, worker
from landscape_core.errors import UserError
from landscape_core.plan import pace
from landscape_core.plan import preflight as module
from landscape_core.plan.gguf_meta import read_gguf
from landscape_core.plan.identity import plan
from landscape_core.plan.model_files import bundled_gguf
from landscape_core.plan.preflight import preflight
from landscape_core.plan.tokens import prompt_lengths
from landscape_core.readers import figures
from landscape_core.readers.details import EMPTY_SYSTEM_TURN, NO_SYSTEM_TURN, run_details
from landscape_core.readers.export import RUN_COLUMNS
from landscape_core.readers.results import run_title
from landscape_core.spec.config import PromptSetSpec, SweepSpec
from landscape_core.spec.datasets import load_prompts
from landscape_core.store.jobs import Stage, remaining_seconds
from landscape_core.store.runs import Store
from landscape_core.store.uploads import save_upload
from landscape_core.submit import submit
from pages.common import worker_caption

ROOT = Path(__file__).resolve().parent.parent


def page(store: Store, name: str, monkeypatch, **state) -> AppTest:
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}_page.py"), default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


# 1. "View" on a job launched seconds ago opened the previous run ----------------------


def test_a_queued_job_knows_its_run_before_the_worker_starts(store, tiny_spec):
    spec = tiny_spec()
    queued = submit(store, spec)
    job = store.jobs.frame().set_index("job_id").loc[queued.job_id]
    assert job.run_id == queued.run_id == plan(spec, store.file_digest).run_id
    assert job.status == "queued"


def test_view_on_a_new_job_opens_that_run_not_the_last_one(store, tiny_spec, monkeypatch):
    sweep.run(tiny_spec(label="earlier"), store)  # the run a stale selection would show
    queued = submit(store, tiny_spec(label="new", grid=[{"num": 5}]))
    at = page(store, "jobs", monkeypatch)
    view = next(b for b in at.button if b.key == f"view-{queued.job_id}")
    at = view.click().run()
    assert at.session_state["run_id"] == queued.run_id
    at = page(store, "landscape", monkeypatch, run_id=queued.run_id)
    assert not at.exception
    assert any(queued.run_id in i.value and "no stored point yet" in i.value for i in at.info)
    assert not at.metric  # nothing of the earlier run is shown as if it were this one


def test_launch_selects_the_run_it_queued(store, tiny_model_dir, monkeypatch):
    at = page(store, "launch", monkeypatch)
    at.selectbox[0].select("Local directory (safetensors)").run()
    at.text_input(key="model_path").input(str(tiny_model_dir)).run()
    # the page's link to Jobs needs the app's router, which a lone page under test lacks
    monkeypatch.setattr("streamlit.page_link", lambda *args, **kwargs: None)
    at = next(b for b in at.button if b.label == "Launch").click().run()
    assert not at.exception
    job = store.jobs.frame().iloc[0]
    assert job.run_id and at.session_state["run_id"] == job.run_id


# 2. Labels were lost when a run was reused --------------------------------------------


def test_a_reused_run_keeps_every_label_and_jobs_keep_theirs(store, tiny_spec):
    first = sweep.run(tiny_spec(label="sweep"), store)
    store.jobs.submit(tiny_spec(label="compare [default]").to_dict(), "compare [default]")
    again = sweep.run(tiny_spec(label="compare [default]"), store)  # identical: reused
    assert again.run_id == first.run_id and again.computed == 0
    run = store.run(first.run_id)
    assert run["labels"] == ["sweep", "compare [default]"]
    assert run_title(run).startswith("sweep / compare [default] · ")
    assert store.jobs.frame().label.tolist() == ["compare [default]"]


# 3. ETAs misled: no stage while loading, a resume's old points in the rate ------------


def test_the_time_left_counts_only_this_jobs_own_points():
    now = 1000.0
    assert remaining_seconds(3, 13, 3, now - 30, now) is None  # resumed: nothing timed yet
    assert remaining_seconds(5, 13, 3, now - 10, now) == pytest.approx(40.0)  # 5 s a point
    assert remaining_seconds(0, 13, 0, None, now) is None  # still loading


def test_a_job_records_its_stages_and_where_its_points_began(store, tiny_spec):
    spec = tiny_spec(grid=[{"num": 5}])
    sweep.run(tiny_spec(grid=[{"num": 5}]), store, should_stop=_after_points(store, spec, 2))
    stages: list[str] = []
    real = store.jobs.update

    def spy(job_id, claim=None, **fields):
        if "stage" in fields:
            stages.append(fields["stage"])
        return real(job_id, claim, **fields)

    store.jobs.update = spy  # type: ignore[method-assign]
    queued = submit(store, spec)
    worker.run_job(store, store.jobs.claim(pid=1))
    job = store.jobs.frame().set_index("job_id").loc[queued.job_id]
    assert job.status == "done" and job.done == 5
    assert job.done_at_start == 2  # the resumed points are not in the job's pace
    assert job.points_started > 0
    assert stages[0] == Stage.LOADING and Stage.POINTS in stages and Stage.COHERENCE in stages


def _after_points(store: Store, spec, n: int):
    run_id = plan(spec, store.file_digest).run_id
    return lambda: bool(store.grid(run_id)) and len(store.pending(run_id)) <= 5 - n


def test_jobs_page_shows_the_stage_before_the_first_point(store, tiny_spec, monkeypatch):
    queued = submit(store, tiny_spec())
    store.jobs.claim(pid=1)
    store.jobs.update(queued.job_id, total=3, stage=Stage.CONVERTING)
    monkeypatch.setattr("landscape_core.store.jobs.worker_gone", lambda *a, **k: False)
    at = page(store, "jobs", monkeypatch)
    assert any(Stage.CONVERTING in str(p.proto.text) for p in at.get("progress"))
    now = time.time()
    store.jobs.update(
        queued.job_id, done=2, stage=Stage.POINTS, points_started=now - 20, done_at_start=1
    )
    at = page(store, "jobs", monkeypatch)
    text = " ".join(str(p.proto.text) for p in at.get("progress"))
    # one point in the 20 s since the start: ~20 s for the last (more if the page was slow)
    assert re.search(r"2/3 points · computing points · ~2\d s left", text), text


def test_preflight_counts_the_bundled_models_first_conversion(tmp_path, monkeypatch):
    spec = SweepSpec.from_dict({"model": {"kind": "bundled"}, "grid": [{"num": 3}]})
    first = module.preflight(spec, tmp_path)  # no converted copy in this store yet
    monkeypatch.setattr(module, "bundled_copy", lambda models: bundled_gguf())
    later = module.preflight(spec, tmp_path)
    assert first.seconds == pytest.approx(later.seconds + module.CONVERT_S)


def test_preflight_counts_the_coherence_pass_and_rounds_up(tmp_path):
    base = {"model": {"kind": "bundled"}, "grid": [{"num": 3}], "prompts": {"limit": 4}}
    on = module.preflight(SweepSpec.from_dict(base), tmp_path)
    off = module.preflight(SweepSpec.from_dict({**base, "runtime": {"coherence": False}}), tmp_path)
    per_answer = pace.COHERENCE_S_PER_ANSWER_135M * on.n_params / pace.REFERENCE_PARAMS
    assert on.seconds - off.seconds == pytest.approx(3 * 4 * per_answer)
    assert module._duration(121) == "3 min" and module._duration(89.2) == "90 s"


# 4. An upload of numbers only could be launched; no preview --------------------------


def test_an_upload_without_text_is_refused_by_its_own_name(store):
    with pytest.raises(UserError, match=r"ids\.csv has no column of text"):
        save_upload(store, "ids.csv", b"id,score\n1,0.5\n2,0.75\n")
    mixed = save_upload(store, "mixed.csv", b"id,prompt\n1,Tell me a joke\n2,Name a colour\n")
    assert mixed.columns == {"prompt": 2}
    assert mixed.preview[0] == {"id": "1", "prompt": "Tell me a joke"}


def test_a_prompt_file_column_of_numbers_is_refused(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("id,prompt\n1,hello\n2,world\n")
    spec = PromptSetSpec(source="file", path=str(path), column="id")
    with pytest.raises(UserError, match="column 'id' of rows.csv holds no text"):
        load_prompts(spec)


def test_launch_shows_the_prompts_it_will_send(store, tiny_model_dir, monkeypatch):
    at = page(store, "launch", monkeypatch)
    at.selectbox[0].select("Local directory (safetensors)").run()
    at.text_input(key="model_path").input(str(tiny_model_dir)).run()
    preview = next(e for e in at.expander if e.label.startswith("The first prompts"))
    shown = preview.dataframe[0].value.prompt.tolist()
    assert shown == list(load_prompts(PromptSetSpec(limit=5)).prompts)


def test_launch_without_an_uploaded_file_says_so_plainly(store, monkeypatch):
    at = page(store, "launch", monkeypatch)
    next(s for s in at.selectbox if s.label == "Prompt set").select("upload").run()
    errors = [e.value for e in at.error]
    assert any("upload a CSV or JSONL file of prompts" in e for e in errors), errors
    assert not any("SweepSpec" in e for e in errors)


# 5. A huge grid was launched like any other ------------------------------------------


def test_a_launch_of_many_hours_asks_for_confirmation(store, tiny_model_dir, monkeypatch):
    at = page(store, "launch", monkeypatch)
    at.selectbox[0].select("Local directory (safetensors)").run()
    at.text_input(key="model_path").input(str(tiny_model_dir)).run()
    next(s for s in at.selectbox if s.label == "Direction type").select("2D random").run()
    for name in ("alpha points", "beta points"):  # 90,000 points: hours even for this model
        next(f for f in at.number_input if f.label == name).set_value(300)
    next(f for f in at.number_input if f.label.startswith("max_new_tokens")).set_value(512).run()
    assert any("may take up to" in w.value for w in at.warning)
    launch = next(b for b in at.button if b.label == "Launch")
    assert launch.disabled
    at = at.checkbox[-1].check().run()
    assert not next(b for b in at.button if b.label == "Launch").disabled


# 6. Wording -----------------------------------------------------------------------------


def test_compare_names_each_run_and_prints_figures_alike(store, tiny_spec, monkeypatch):
    sweep.run(tiny_spec(label="first"), store)
    sweep.run(tiny_spec(label="second", system_prompt={"preset": "empty"}), store)
    at = page(store, "compare", monkeypatch)
    assert not at.exception
    capability = next(d.value for d in at.dataframe if "perplexity at model" in d.value.columns)
    assert sorted(r.split(" · ")[0] for r in capability.run) == ["first", "second"]
    cells = capability.drop(columns="run").to_numpy().ravel().tolist()
    assert "None" not in map(str, cells) and set(cells) <= {"not measured"} | {
        c for c in cells if re.fullmatch(r"\d+\.\d", c)
    }


def test_compare_draws_runs_in_colours_told_apart():
    frame = pd.DataFrame({"idx": [0], "i": [0], "j": [0], "alpha": [0.0], "beta": [0.0],
                          "asr": [0.0], "rep": [0]})  # fmt: skip
    fig = figures.overlay_1d({"a": frame, "b": frame, "c": frame})
    colours = [t.line.color for t in fig.data]
    assert len(set(colours)) == 3

    def rgb(c):
        return [int(c[k : k + 2], 16) for k in (1, 3, 5)]

    first, second = rgb(colours[0]), rgb(colours[1])
    assert sum(abs(a - b) for a, b in zip(first, second, strict=True)) > 200


def test_the_answer_column_has_one_name_in_every_tab(store, tiny_spec, monkeypatch):
    run_id = sweep.run(tiny_spec(), store).run_id
    at = page(store, "generations", monkeypatch, run_id=run_id)
    tables = [d.value for d in at.dataframe]
    assert all("answer" in t.columns and "text" not in t.columns for t in tables[:2])


def test_visage_says_why_it_is_pending(store, tiny_spec, monkeypatch):
    spec = tiny_spec(grid=[{"num": 5}])
    sweep.run(spec, store, should_stop=_after_points(store, spec, 1))
    run_id = plan(spec, store.file_digest).run_id
    at = page(store, "landscape", monkeypatch, run_id=run_id)
    visage = next(m for m in at.metric if m.label == "VISAGE")
    assert visage.value == "pending"
    assert any("basin's edges" in c.value for c in at.caption)


# 7. The memory estimate changed after the first run -----------------------------------


def test_a_gguf_gives_the_sizes_its_config_json_would():
    sizes = read_gguf(bundled_gguf()).config
    # SmolLM2-135M-Instruct's config.json, as the conversion writes it
    assert sizes == {
        "num_hidden_layers": 30, "hidden_size": 576, "num_attention_heads": 9,
        "num_key_value_heads": 3, "max_position_embeddings": 8192, "vocab_size": 49152,
    }  # fmt: skip


# 8. The worker outlived the app silently ---------------------------------------------


def test_the_sidebar_says_when_an_idle_worker_exits(store):
    assert store.jobs.register_worker(os.getpid(), idle_timeout=600)
    state = store.jobs.worker_state()
    assert not state.busy
    assert "exits in 10 min" in worker_caption(state, time.time())
    store.jobs.submit({"label": "x"})
    assert store.jobs.claim(os.getpid()) is not None  # claiming a job marks the worker busy
    assert "running a job" in worker_caption(store.jobs.worker_state(), time.time())
    store.jobs.worker_idle(os.getpid(), time.time() - 60)
    assert "exits in 9 min" in worker_caption(store.jobs.worker_state(), time.time())


# 9. Emoji icons rendered as empty boxes -----------------------------------------------

EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")


def test_the_app_uses_material_icons_not_emoji():
    sources = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
    found = {p.name: EMOJI.findall(p.read_text()) for p in sources}
    assert not {k: v for k, v in found.items() if v}


def test_the_gguf_tokenizer_counts_what_the_converted_one_counts():
    """AdvBench under the default preset: 22,361 tokens, the longest 59, as the
    converted tokenizer.json counts them (the slow test below compares the two)."""

    spec = SweepSpec.from_dict({"model": {"kind": "bundled"}, "prompts": {"limit": 520}})
    lengths = prompt_lengths(spec, load_prompts(spec.prompts).prompts, bundled_gguf())
    assert (len(lengths), sum(lengths), max(lengths)) == (520, 22361, 59)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A store root holding the bundled model's converted copy (made once: ~20 s)."""
    from landscape_core.engine.models import ensure_bundled_safetensors

    root = tmp_path_factory.mktemp("converted")
    ensure_bundled_safetensors(root / "models")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["default", "empty", "llama2", "aoa"])
def test_one_memory_estimate_before_and_after_the_conversion(tmp_path, converted, preset):
    spec = SweepSpec.from_dict(
        {"model": {"kind": "bundled"}, "system_prompt": {"preset": preset},
         "prompts": {"limit": 520}}
    )  # fmt: skip
    assert preflight(spec, tmp_path).memory == preflight(spec, converted).memory


# Run details, the run's link, and exports that carry their run -------------------------


def test_run_details_name_the_weights_prompts_and_reused_points(store, tiny_spec):
    first = sweep.run(tiny_spec(label="three", grid=[{"num": 3}]), store)
    wider = sweep.run(tiny_spec(label="five", grid=[{"num": 5}]), store)  # shares 0 and +-1
    details = run_details(store, wider.run_id)
    run = store.run(wider.run_id)
    assert details.labels == ("five",) and details.points == 5 and details.stored == 5
    assert details.identity["model fingerprint"] == run["provenance"]["model"]["fingerprint"]
    assert details.identity["prompt set hash"] == run["provenance"]["prompt_set"]["hash"]
    assert details.reused == 3 and details.shared == 3  # computed for the 3-point run
    assert wider.computed == 2 and first.computed == 3
    assert details.compute_s > 0 and details.last_finished >= details.created


def test_landscape_shows_run_details_and_a_link_to_the_run(store, tiny_spec, monkeypatch):
    run_id = sweep.run(tiny_spec(system_prompt={"preset": "aoa"}), store).run_id
    at = page(store, "landscape", monkeypatch, run_id=run_id)
    assert not at.exception
    panel = next(e for e in at.expander if e.label == "Run details")
    assert any(c.value.endswith(f"?run={run_id}") for c in panel.code)
    assert any("AOA" in t.value for t in panel.text)  # the system prompt's own text
    assert run_id in panel.dataframe[0].value.value.tolist()


def test_the_cli_export_names_its_run(store, tiny_spec, tmp_path):
    run_id = sweep.run(tiny_spec(label="tagged"), store).run_id
    out = tmp_path / "gens.csv"
    assert cli.main(["export", run_id, "--store", str(store.root), "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert tuple(frame.columns[:5]) == RUN_COLUMNS
    assert set(frame.run_id) == {run_id} and set(frame.run_label) == {"tagged"}
    assert set(frame.judge) == {"keyword"}


def test_no_system_turn_is_told_from_an_empty_one(store, tiny_spec):
    default = sweep.run(tiny_spec(), store).run_id
    empty = sweep.run(tiny_spec(system_prompt={"preset": "empty"}), store).run_id
    assert run_details(store, default).system_prompt == NO_SYSTEM_TURN
    assert run_details(store, empty).system_prompt == EMPTY_SYSTEM_TURN

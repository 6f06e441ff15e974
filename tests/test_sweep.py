import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from landscape_core import sweep
from landscape_core.engine import session
from landscape_core.engine.decoder import generate
from landscape_core.engine.models import load_model
from landscape_core.errors import UserError
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.identity import plan
from landscape_core.plan.model_files import model_dir
from landscape_core.spec.config import ModelSpec


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_origin_reproduces_unperturbed_generations(tiny_spec, store, tiny_model_dir):
    spec = tiny_spec()
    sweep.run(spec, store)
    loaded = load_model(spec.model, store.models_dir)
    prompts = plan(spec, store.file_digest).prompts.prompts
    texts, special = render_prompts(loaded.tokenizer, prompts, spec.system_prompt, "auto")
    base = generate(loaded.model, loaded.tokenizer, texts, spec.generation, batch_size=2)
    gens = store.generations_frame(plan(spec, store.file_digest).run_id)
    at_origin = gens[gens.alpha == 0.0].sort_values("prompt_index")
    assert at_origin.text.tolist() == [g.text for g in base]
    assert at_origin.n_tokens.tolist() == [g.n_tokens for g in base]


@pytest.fixture
def seen(monkeypatch):
    """Records the model each sweep loads and its weights before the sweep."""
    record = {}
    real_load = session.load_model

    def spy_load(spec, models_dir):
        loaded = real_load(spec, models_dir)
        record["model"] = loaded.model
        record["before"] = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
        return loaded

    monkeypatch.setattr(session, "load_model", spy_load)
    return record


def test_weights_after_a_sweep_equal_weights_before(tiny_spec, store, seen):
    """The live model is restored bit for bit at the end of the sweep."""
    sweep.run(
        tiny_spec(directions=[{"seed": 1}, {"seed": 2}], grid=[{"num": 3}, {"num": 2}]), store
    )
    after = dict(seen["model"].named_parameters())
    assert all(torch.equal(seen["before"][n], after[n]) for n in after)


def test_rerun_generates_nothing(tiny_spec, store):
    spec = tiny_spec()
    assert sweep.run(spec, store).computed == 3
    again = sweep.run(spec, store)
    assert again.computed == 0
    assert again.status == "complete"


def test_extending_a_grid_generates_only_new_points(tiny_spec, store):
    sweep.run(tiny_spec(grid=[{"start": -0.5, "stop": 0.5, "num": 11}]), store)
    wider = sweep.run(tiny_spec(grid=[{"start": -0.5, "stop": 0.5, "num": 21}]), store)
    assert wider.computed == 10


def test_2d_run_records_orthogonal_directions(tiny_spec, store):
    spec = tiny_spec(directions=[{"seed": 1}, {"seed": 2}], grid=[{"num": 2}, {"num": 2}])
    summary = sweep.run(spec, store)
    provenance = store.run(summary.run_id)["provenance"]
    assert abs(provenance["cos_d1_d2"]) < 1e-6


def test_2d_grid_shares_its_beta_zero_row_with_the_1d_run(tiny_spec, store):
    sweep.run(tiny_spec(), store)
    spec = tiny_spec(directions=[{"seed": 7}, {"seed": 8}], grid=[{"num": 3}, {"num": 3}])
    assert sweep.run(spec, store).computed == 6


def test_provenance_records_hashes_seeds_and_versions(tiny_spec, store):
    summary = sweep.run(tiny_spec(), store)
    prov = store.run(summary.run_id)["provenance"]
    assert len(prov["model"]["files"]["model.safetensors"]) == 64
    assert prov["seeds"] == [7]
    assert prov["normalisation"] == ["layer"]
    assert len(prov["prompt_set"]["hash"]) == 64
    assert prov["generation"]["max_new_tokens"] == 6
    assert prov["packages"]["torch"] == torch.__version__


def test_cancel_keeps_finished_points_and_resume_completes(tiny_spec, store):
    spec = tiny_spec(grid=[{"num": 5}])
    run_id = plan(spec, store.file_digest).run_id

    def two_stored() -> bool:  # asked before the model loads too, when no row exists yet
        return len(store.grid(run_id)) - len(store.pending(run_id)) >= 2

    first = sweep.run(spec, store, should_stop=two_stored)
    assert first.status == "cancelled"
    assert first.computed == 2
    rest = sweep.run(spec, store)
    assert rest.computed == 5 - first.computed
    frame = store.points_frame(first.run_id)
    assert frame.status.eq("done").all()
    assert len(store.generations_frame(first.run_id)) == 5 * 3


def test_nan_weights_fail_each_point_with_the_reason(tiny_spec, store, tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = _weights(broken)
    weights["model.layers.0.mlp.up_proj.weight"][0, 0] = float("nan")
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    summary = sweep.run(tiny_spec(model={"kind": "local", "path": str(broken)}), store)
    assert summary.status == "complete"
    assert summary.failed == 3
    frame = store.points_frame(summary.run_id)
    assert frame.status.eq("failed").all()
    assert frame.error.str.contains("up_proj").all()


def test_wrong_model_path_leaves_the_store_untouched(tiny_spec, store, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        sweep.run(tiny_spec(model={"kind": "local", "path": str(tmp_path / "nope")}), store)
    assert store.runs_frame().empty


def test_pickled_weights_are_refused(tiny_spec, store, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UserError, match="pickled weights"):
        sweep.run(tiny_spec(model={"kind": "local", "path": str(pickled)}), store)
    assert store.runs_frame().empty


def test_hub_id_missing_from_the_cache_says_how_to_get_it(tiny_spec, store, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="not in the local Hugging Face cache"):
        sweep.run(tiny_spec(model={"kind": "hub", "path": "someone/missing-model"}), store)
    assert store.runs_frame().empty


def test_grid_with_too_many_points_is_refused(tiny_spec, store):
    spec = tiny_spec(directions=[{"seed": 1}, {"seed": 2}], grid=[{"num": 100_000}, {"num": 1000}])
    with pytest.raises(UserError, match="fewer points"):
        sweep.run(spec, store)
    assert store.runs_frame().empty


def test_grid_too_large_for_disk_is_refused(tiny_spec, store, monkeypatch):
    monkeypatch.setattr("landscape_core.plan.preflight.free_disk", lambda path: 1000)
    spec = tiny_spec(grid=[{"num": 50}], generation={"max_new_tokens": 512})
    with pytest.raises(UserError, match="GiB is free"):
        sweep.run(spec, store)
    assert store.runs_frame().empty


def test_memory_that_cannot_fit_is_refused(tiny_spec, store, monkeypatch):
    monkeypatch.setattr("landscape_core.engine.session.available_memory", lambda: 1 << 20)
    with pytest.raises(UserError, match="lower runtime.batch_size"):
        sweep.run(tiny_spec(), store)
    assert store.runs_frame().empty


def test_model_spec_for_local_dir_needs_safetensors(tmp_path):
    (tmp_path / "config.json").write_text("{}")

    with pytest.raises(UserError, match="no \\*.safetensors"):
        model_dir(ModelSpec(kind="local", path=str(tmp_path)))


def test_ctrl_c_keeps_finished_points_and_restores_weights(tiny_spec, store, seen):
    spec = tiny_spec(grid=[{"num": 5}])
    run_id = plan(spec, store.file_digest).run_id

    def interrupt_after_first_point():
        if len(store.pending(run_id)) == 4:  # raised inside the second point's batches
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        sweep.run(spec, store, should_stop=interrupt_after_first_point)
    after = dict(seen["model"].named_parameters())
    assert all(torch.equal(seen["before"][n], after[n]) for n in after)
    assert len(store.pending(run_id)) == 4  # the finished point was kept
    assert sweep.run(spec, store).computed == 4


def test_interpolation_at_alpha_one_answers_like_the_target(tiny_spec, store, tiny_target_dir):
    target = {"kind": "local", "path": str(tiny_target_dir)}
    spec = tiny_spec(
        directions=[{"kind": "interpolation", "target": target}],
        grid=[{"start": 0.0, "stop": 1.0, "num": 2}],
    )
    summary = sweep.run(spec, store)
    gens = store.generations_frame(summary.run_id)
    at_target = gens[gens.alpha == 1.0].sort_values("prompt_index").text.tolist()
    direct = sweep.run(tiny_spec(model=target, grid=[{"start": 0.0, "stop": 0.0, "num": 1}]), store)
    target_gens = store.generations_frame(direct.run_id).sort_values("prompt_index")
    assert at_target == target_gens.text.tolist()


def test_2d_interpolation_times_random_is_orthogonal(tiny_spec, store, tiny_target_dir):
    target = {"kind": "local", "path": str(tiny_target_dir)}
    spec = tiny_spec(
        directions=[{"kind": "interpolation", "target": target}, {"kind": "random", "seed": 3}],
        grid=[{"start": 0.0, "stop": 1.0, "num": 2}, {"num": 2}],
    )
    summary = sweep.run(spec, store)
    assert summary.computed == 4
    assert abs(store.run(summary.run_id)["provenance"]["cos_d1_d2"]) < 1e-6


def test_unknown_judge_is_refused_before_anything_is_stored(tiny_spec, store):
    with pytest.raises(UserError, match="unknown judge"):
        sweep.run(tiny_spec(judges=[{"name": "gpt-judge"}]), store)
    assert store.runs_frame().empty


def test_a_run_resumed_with_other_judges_gets_every_judges_verdicts(tiny_spec, store):
    """Points stored before the change had only the old judges' verdicts, for good."""
    first = sweep.run(tiny_spec(), store, should_stop=lambda: _stored(store) >= 1)
    assert first.status == "cancelled"
    both = [{"name": "keyword"}, {"name": "refusal-patterns"}]
    resumed = sweep.run(tiny_spec(judges=both), store)
    assert resumed.run_id == first.run_id and resumed.status == "complete"
    for judge in ("keyword", "refusal-patterns"):
        verdicts = store.generations_frame(resumed.run_id, judge).refused
        assert verdicts.notna().sum() == 3 * 3, judge  # was 6 of 9 for refusal-patterns
    # a finished run given one more judge: scored from the stored answers, nothing generated
    again = sweep.run(tiny_spec(judges=[*both, {"name": "xstest-prefix"}]), store)
    assert again.computed == 0
    assert store.generations_frame(again.run_id, "xstest-prefix").refused.notna().sum() == 9


def _stored(store) -> int:
    with store.connect() as conn:
        return conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
